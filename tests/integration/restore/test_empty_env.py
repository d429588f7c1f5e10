"""Restore-side passwords (nexus_backup_info, nexus_restore, nexus_keyring_rotate): an empty variable
counts as unset, an empty backup_password option is refused by name where one is needed."""

from __future__ import annotations

import shutil

from tests.nexus_server import keyring as server_keyring
from tests.unit.module_utils._fixtures import fixture_path

NAME = 'nexus-backup-2025-12-04-001500.tar.gz.enc'


def backup_dir(tmp_path):
    directory = tmp_path / 'backups'
    directory.mkdir()
    shutil.copyfile(fixture_path('nexusctl-backup.tar.gz.enc'), str(directory / NAME))
    return directory


def test_backup_info(ansible_module, tmp_path):
    directory = backup_dir(tmp_path)
    module = 'nexus.secrets.nexus_backup_info'
    listed = ansible_module(module, {'path': str(directory)}, environment={'NEXUS_BACKUP_PASSWORD': ''})
    assert not listed.get('failed') and listed['verified'] is False, listed  # '' is no password: list only
    out = ansible_module(module, {'path': str(directory), 'verify': True}, environment={'NEXUS_BACKUP_PASSWORD': ''})
    assert out.get('failed') and out['msg'].startswith('verify=true needs backup_password'), out
    out = ansible_module(module, {'path': str(directory), 'verify': True, 'backup_password': ''},
                         environment={'NEXUS_BACKUP_PASSWORD': 'from-the-environment'})
    assert out.get('failed') and out['msg'].startswith('backup_password must not be empty'), out


def test_restore(ansible_module, tmp_path):
    src = backup_dir(tmp_path) / NAME
    data_dir = tmp_path / 'nexus'
    module = 'nexus.secrets.nexus_restore'
    base = {'src': str(src), 'data_dir': str(data_dir), 'health_url': 'http://127.0.0.1:9/health'}
    out = ansible_module(module, base, environment={'NEXUS_BACKUP_PASSWORD': ''})
    assert out.get('failed') and out['msg'].startswith('backup_password is required'), out
    out = ansible_module(module, dict(base, backup_password=''),
                         environment={'NEXUS_BACKUP_PASSWORD': 'from-the-environment'})
    assert out.get('failed') and out['msg'].startswith('backup_password must not be empty'), out
    assert not data_dir.exists()


def test_keyring_rotate_empty_key_password_variable_is_the_nexus_default(ansible_module, tmp_path):
    data_dir = tmp_path / 'nexus'
    server_keyring.save(data_dir / 'data' / 'keys', server_keyring.generate_plaintexts(), 'changeme-in-production')
    out = ansible_module('nexus.secrets.nexus_keyring_rotate', {'data_dir': str(data_dir), 'new_key_password': 'n' * 20},
                         environment={'NEXUS_KEY_PASSWORD': ''})
    assert not out.get('failed') and out['changed'], out
