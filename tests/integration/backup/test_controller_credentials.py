"""Credentials in the controller's environment reach every module, on a host whose environment lacks them.

The managed "host" runs its Python through a wrapper under ``env -i``: nothing of the controller's
environment reaches the modules except what the action plugins pass as arguments (as with SSH and
an AWX credential, which injects NEXUS_* into the controller's environment only).
"""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from tests.helpers.ansible import run_playbook
from tests.nexus_server.harness import ADMIN_PASSWORD, ADMIN_USER, DEFAULT_KEY_PASSWORD, login

BACKUP_PASSWORD = 'controller-backup-password'
EXPORT_PASSWORD = 'controller-export-password'

pytestmark = [pytest.mark.slow]


def managed_host(tmp_path):
    wrapper = tmp_path / 'python-env-i'
    wrapper.write_text('#!/bin/sh\nexec /usr/bin/env -i PATH=/usr/bin:/bin %s "$@"\n' % sys.executable)
    wrapper.chmod(0o755)
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {'managed': {
        'ansible_connection': 'local', 'ansible_python_interpreter': str(wrapper)}}}}))
    return str(inventory)


def controller_env(**values):
    """The ansible-playbook process's environment: no NEXUS_* of the caller, only ``values``."""
    env = dict((name, '') for name in os.environ if name.startswith('NEXUS_'))
    env.update(values)
    return env


def play(tmp_path, tasks):
    path = tmp_path / ('play-%d.yml' % len(list(tmp_path.glob('play-*.yml'))))
    path.write_text(yaml.safe_dump([{'hosts': 'managed', 'gather_facts': False, 'tasks': tasks}]))
    return path


def test_every_module_gets_its_credentials_from_the_controller(nexus_server, tmp_path):
    client = nexus_server.client()
    for i in range(5):
        assert client.create('ctl/secret-%d' % i, 'value-%d' % i).status_code == 201
    token = login(nexus_server.url)
    backups = tmp_path / 'backups'
    tasks = [
        {'name': 'host environment', 'ansible.builtin.command': 'env', 'register': 'host_env', 'changed_when': False},
        {'name': 'backup', 'nexus.secrets.nexus_backup': {'data_dir': str(nexus_server.workdir), 'dest': str(backups)},
         'register': 'backup'},
        {'name': 'info', 'nexus.secrets.nexus_backup_info': {'path': '{{ backup.path }}', 'verify': True}},
        {'name': 'restore', 'nexus.secrets.nexus_restore': {
            'src': '{{ backup.path }}', 'data_dir': str(tmp_path / 'restored'), 'force': True}},
        {'name': 'export', 'nexus.secrets.nexus_export': {'dest': str(tmp_path / 'export.enc')}},
        {'name': 'import', 'nexus.secrets.nexus_import': {'src': str(tmp_path / 'export.enc')}},
        {'name': 'server info', 'nexus.secrets.nexus_info': {'compare_backup': '{{ backup.path }}'}},
        {'name': 'audit info', 'nexus.secrets.nexus_audit_info': {}},
    ]
    secrets = {'NEXUS_BACKUP_PASSWORD': BACKUP_PASSWORD, 'NEXUS_KEY_PASSWORD': DEFAULT_KEY_PASSWORD,
               'NEXUS_EXPORT_PASSWORD': EXPORT_PASSWORD, 'NEXUS_URL': nexus_server.url, 'NEXUS_TOKEN': token}
    res = run_playbook(play(tmp_path, tasks), inventory=managed_host(tmp_path), env=controller_env(**secrets))
    assert res.rc == 0, res.stdout[-6000:] + res.stderr[-3000:]
    host = 'managed'
    assert 'NEXUS_' not in res.task('host environment', host)['stdout']  # the host really lacks them
    assert res.task('backup', host)['secrets'] == 5
    info = res.task('info', host)['backups'][0]
    assert info['valid'] and info['keyring_verified'] is True  # NEXUS_KEY_PASSWORD reached it too
    restored = res.task('restore', host)
    assert restored['changed'] and restored['secrets'] == 5 and restored['keyring_verified'] is True
    exported = res.task('export', host)
    assert exported['count'] == 5 and exported['encrypted'] is True
    assert res.task('import', host)['total'] == 5
    info = res.task('server info', host)
    assert info['count'] == 5 and info['ok'], info  # NEXUS_TOKEN and NEXUS_BACKUP_PASSWORD (compare_backup)
    assert res.task('audit info', host)['entries'] > 0
    for value in (BACKUP_PASSWORD, EXPORT_PASSWORD, token):
        assert value not in res.stdout + res.stderr


def test_username_and_password_from_the_controller_and_a_message_that_names_the_variable(nexus_server, tmp_path):
    tasks = [
        {'name': 'backup without a password anywhere', 'nexus.secrets.nexus_backup': {
            'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'backups')}, 'ignore_errors': True},
        {'name': 'export', 'nexus.secrets.nexus_export': {'dest': str(tmp_path / 'export.json')}},
        # (A task's environment: cannot reach a host started under env -i; the unit tests cover it.)
        {'name': 'the task option beats the controller', 'nexus.secrets.nexus_export': {
            'dest': str(tmp_path / 'export-2.json'), 'username': ADMIN_USER, 'password': 'wrong-password'},
         'ignore_errors': True},
    ]
    env = controller_env(NEXUS_URL=nexus_server.url, NEXUS_USERNAME=ADMIN_USER, NEXUS_PASSWORD=ADMIN_PASSWORD)
    res = run_playbook(play(tmp_path, tasks), inventory=managed_host(tmp_path), env=env)
    failed = res.task('backup without a password anywhere', 'managed')
    assert failed['failed'] and 'missing required arguments: backup_password' in failed['msg']
    assert 'NEXUS_BACKUP_PASSWORD' in failed['msg'] and "controller's environment" in failed['msg']
    assert not (tmp_path / 'backups').exists()
    assert res.task('export', 'managed')['count'] == 0 and (tmp_path / 'export.json').exists()
    overridden = res.task('the task option beats the controller', 'managed')
    assert overridden['failed'] and 'login as' in overridden['msg'], overridden
