"""nexus.secrets.server on a blank directory tree: binaries checked and installed, a real system user,
directories and environment file with the documented owners and modes, a unit that systemd accepts,
idempotence, check mode, a server started and stopped through start/stop commands, and the guide's
whole recovery (blank host to a verified server) in one disaster_recovery.yml run.

The reference server stands in for the ``nexus`` binary: a small script that runs it. It runs as root
here because the test's Python lives where a fresh system user cannot execute it; the unit file is
checked for ``User=`` instead.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from ansible_collections.nexus.secrets.plugins.module_utils._backup import create_backup
from tests.helpers.ansible import REPO, run_playbook
from tests.nexus_server.harness import ApiClient, free_port, login

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates a system user and root-owned files')

SYSTEMD_ANALYZE = shutil.which('systemd-analyze')
START_STOP_DAEMON = shutil.which('start-stop-daemon')


@pytest.fixture
def blank_host():
    """A directory standing for a new machine's /, reachable by every user, and a fresh account name."""
    root = Path(tempfile.mkdtemp(prefix='nexus-blank-host-', dir='/tmp'))
    root.chmod(0o755)
    binary = root / 'controller' / 'nexus'
    binary.parent.mkdir()
    binary.write_text('#!/bin/sh\nexec %s %s "$@"\n' % (sys.executable, REPO / 'tests' / 'nexus_server' / 'nexus.py'))
    binary.chmod(0o755)
    user = 'nexus-t%s' % uuid.uuid4().hex[:8]
    host = {
        'root': root, 'user': user, 'binary': binary,
        'sha256': hashlib.sha256(binary.read_bytes()).hexdigest(),
        'vars': {
            'nexus_server_binary_src': str(binary),
            'nexus_server_binary_sha256': hashlib.sha256(binary.read_bytes()).hexdigest(),
            'nexus_server_bin_dir': str(root / 'usr' / 'local' / 'bin'),
            'nexus_server_user': user,
            'nexus_server_group': user,
            'nexus_server_data_dir': str(root / 'var' / 'lib' / 'nexus'),
            'nexus_server_environment_file': str(root / 'etc' / 'nexus' / 'environment'),
            'nexus_server_unit_dir': str(root / 'etc' / 'systemd' / 'system'),
        },
    }
    (root / 'etc' / 'systemd' / 'system').mkdir(parents=True)
    (root / 'usr' / 'local' / 'bin').mkdir(parents=True)
    yield host
    subprocess.run(['userdel', user], capture_output=True, check=False)
    subprocess.run(['groupdel', user], capture_output=True, check=False)
    shutil.rmtree(str(root), ignore_errors=True)


def start_command(root, env_file, pidfile, data_dir, port):
    """The installed binary started in the background, with its environment file read as systemd would."""
    return ("sh -c 'set -a && . %s && set +a && exec %s --start --background --make-pidfile --pidfile %s "
            "--chdir %s --startas %s -- -addr 127.0.0.1:%d -storage sqlite -db %s/nexus.db'"
            % (env_file, START_STOP_DAEMON, pidfile, data_dir, root / 'usr' / 'local' / 'bin' / 'nexus', port,
               data_dir))


def stop_command(pidfile):
    return '%s --stop --oknodo --pidfile %s --retry TERM/30/KILL/5 --remove-pidfile' % (START_STOP_DAEMON, pidfile)


def provision(tmp_path, variables, check=False):
    playbook = tmp_path / 'provision.yml'
    playbook.write_text(yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False,
                                         'roles': [{'role': 'nexus.secrets.server'}]}]))
    return run_playbook(playbook, extra_vars=variables, check=check)


def changed_tasks(result):
    return [task['task']['name'].split(' : ')[-1] for play in result.data.get('plays', []) for task in play['tasks']
            if task['hosts'].get('localhost', {}).get('changed')]


def owner_mode(path):
    st = os.lstat(str(path))
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def test_blank_host_is_provisioned_idempotently_with_a_unit_systemd_accepts(blank_host, tmp_path):
    variables = dict(blank_host['vars'], nexus_server_state='present')
    root, user = blank_host['root'], blank_host['user']

    preview = provision(tmp_path, variables, check=True)
    assert preview.rc == 0, preview.stdout + preview.stderr
    assert 'Install the hardened systemd unit' in changed_tasks(preview)
    assert not (root / 'var' / 'lib' / 'nexus').exists() and not (root / 'etc' / 'nexus').exists()
    assert not list((root / 'usr' / 'local' / 'bin').iterdir())
    with pytest.raises(KeyError):
        pwd.getpwnam(user)

    first = provision(tmp_path, variables)
    assert first.rc == 0, first.stdout + first.stderr
    account = pwd.getpwnam(user)
    assert account.pw_shell == '/usr/sbin/nologin' and account.pw_dir == variables['nexus_server_data_dir']
    installed = root / 'usr' / 'local' / 'bin' / 'nexus'
    assert hashlib.sha256(installed.read_bytes()).hexdigest() == blank_host['sha256']
    assert owner_mode(installed) == ('root', 'root', 0o755)
    assert owner_mode(root / 'var' / 'lib' / 'nexus') == (user, user, 0o700)
    assert owner_mode(root / 'etc' / 'nexus') == ('root', user, 0o750)
    assert owner_mode(root / 'etc' / 'nexus' / 'environment') == (user, user, 0o600)

    unit = root / 'etc' / 'systemd' / 'system' / 'nexus.service'
    text = unit.read_text()
    for line in ('User=%s' % user, 'WorkingDirectory=%s' % variables['nexus_server_data_dir'],
                 'EnvironmentFile=%s' % variables['nexus_server_environment_file'],
                 'ExecStart=%s -addr :9000 -storage sqlite -db %s/nexus.db' % (installed, variables['nexus_server_data_dir']),
                 'ProtectSystem=strict', 'ReadWritePaths=%s' % variables['nexus_server_data_dir'],
                 'NoNewPrivileges=yes', 'Restart=always'):
        assert line in text.splitlines(), line
    if SYSTEMD_ANALYZE:
        verify = subprocess.run([SYSTEMD_ANALYZE, 'verify', str(unit)], capture_output=True, text=True, check=False)
        assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
        security = subprocess.run([SYSTEMD_ANALYZE, 'security', '--offline=true', str(unit)],
                                  capture_output=True, text=True, check=False)
        exposure = float(re.search(r'Overall exposure level for \S+: ([0-9.]+)', security.stdout).group(1))
        assert exposure <= 2.0, security.stdout  # systemd rates 0-10; below 2.0 is "OK"

    again = provision(tmp_path, variables)
    assert again.rc == 0 and changed_tasks(again) == [], changed_tasks(again)


def test_a_binary_with_another_sha256_is_refused_and_nothing_installed(blank_host, tmp_path):
    variables = dict(blank_host['vars'], nexus_server_state='present', nexus_server_binary_sha256='0' * 64)
    result = provision(tmp_path, variables)
    assert result.rc != 0
    assert 'expected %s. Nothing was installed.' % ('0' * 64) in result.stdout
    assert blank_host['sha256'] in result.stdout
    assert not list((blank_host['root'] / 'usr' / 'local' / 'bin').iterdir())
    assert not (blank_host['root'] / 'var' / 'lib' / 'nexus').exists()


@pytest.mark.skipif(START_STOP_DAEMON is None, reason='start-stop-daemon (dpkg) is not installed')
def test_without_systemd_the_commands_start_and_stop_the_installed_binary(blank_host, tmp_path):
    root, port = blank_host['root'], free_port()
    data_dir, env_file = blank_host['vars']['nexus_server_data_dir'], blank_host['vars']['nexus_server_environment_file']
    pidfile = root / 'nexus.pid'
    start = start_command(root, env_file, pidfile, data_dir, port)
    stop = stop_command(pidfile)
    variables = dict(blank_host['vars'], nexus_server_service_manager='command', nexus_server_start_command=start,
                     nexus_server_stop_command=stop, nexus_server_url='http://127.0.0.1:%d' % port)
    try:
        started = provision(tmp_path, dict(variables, nexus_server_state='started'))
        assert started.rc == 0, started.stdout + started.stderr
        assert requests.get('http://127.0.0.1:%d/health' % port, timeout=5).json()['status'] == 'healthy'
        assert (Path(data_dir) / 'nexus.db').is_file() and (Path(data_dir) / 'data' / 'keys' / 'master.key').is_file()
        assert not (root / 'etc' / 'systemd' / 'system' / 'nexus.service').exists()
        assert 'Start the server with the start command' not in changed_tasks(provision(tmp_path, dict(
            variables, nexus_server_state='started')))

        stopped = provision(tmp_path, dict(variables, nexus_server_state='stopped'))
        assert stopped.rc == 0 and 'Stop the server with the stop command' in changed_tasks(stopped)
        with pytest.raises(requests.ConnectionError):
            requests.get('http://127.0.0.1:%d/health' % port, timeout=5)
    finally:
        subprocess.run(stop.split(), capture_output=True, check=False)


@pytest.mark.slow
@pytest.mark.skipif(START_STOP_DAEMON is None, reason='start-stop-daemon (dpkg) is not installed')
def test_blank_host_becomes_a_serving_server_in_one_disaster_recovery_run(blank_host, nexus_server_factory, tmp_path):
    """No binary, no user, no data, no environment file: one run of the DR playbook with
    nexus_dr_provision=true installs NEXUS, restores the backup and verifies every secret."""
    source = nexus_server_factory(workdir=tmp_path / 'lost-host', key_password='Blank-Host-Keyring-1!')
    client = source.client()
    secrets = {'blank/db/password': 'pa55-%d' % os.getpid(), 'blank/api/key': 'k-1', 'blank/tls/cert': 'PEM\nx'}
    for path, value in secrets.items():
        assert client.create(path, value).status_code == 201
    made = create_backup(str(source.workdir / 'nexus.db'), str(source.workdir / 'data' / 'keys'),
                         str(tmp_path / 'controller-backups'), 'Blank-Host-Backup-2!')
    source.stop()

    root, user, port = blank_host['root'], blank_host['user'], free_port()
    data_dir = str(root / 'var' / 'lib' / 'nexus')
    env_file = str(root / 'etc' / 'nexus' / 'environment')
    pidfile = root / 'nexus.pid'
    host = dict(blank_host['vars'], **{
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'nexus_dr_provision': True, 'nexus_dr_install_deps': False,
        'nexus_dr_data_dir': data_dir, 'nexus_dr_environment_file': env_file,
        'nexus_dr_owner': user, 'nexus_dr_group': user,
        'nexus_dr_environment_owner': user, 'nexus_dr_environment_group': user,
        'nexus_dr_backup_controller_file': made['path'],
        'nexus_dr_backup_upload_dir': str(root / 'var' / 'backups' / 'nexus'),
        'nexus_dr_start_command': start_command(root, env_file, pidfile, data_dir, port),
        'nexus_dr_stop_command': stop_command(pidfile),
        'nexus_dr_url': 'http://127.0.0.1:%d' % port, 'nexus_dr_health_timeout': 60,
        'nexus_dr_report_dir': str(tmp_path / 'reports'),
    })
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {'blank': host}}}))
    try:
        res = run_playbook(REPO / 'playbooks' / 'disaster_recovery.yml', inventory=str(inventory), extra_vars={
            'nexus_dr_hosts': 'blank', 'nexus_dr_confirm': True, 'nexus_dr_backup_password': 'Blank-Host-Backup-2!',
            'nexus_dr_key_password': 'Blank-Host-Keyring-1!', 'nexus_dr_api_username': 'admin',
            'nexus_dr_api_password': 'admin'}, json_output=False)
        assert res.rc == 0, res.stdout[-6000:] + res.stderr[-3000:]
        assert pwd.getpwnam(user).pw_dir == data_dir
        assert owner_mode(data_dir) == (user, user, 0o700) and owner_mode(env_file) == (user, user, 0o600)
        served = ApiClient('http://127.0.0.1:%d' % port, token=login('http://127.0.0.1:%d' % port))
        for path, value in secrets.items():
            got = served.get(path)
            assert got.status_code == 200 and got.json()['value'] == value, (path, got.text)
        assert len(served.list().json()['secrets']) == len(secrets)
    finally:
        subprocess.run(stop_command(pidfile).split(), capture_output=True, check=False)
