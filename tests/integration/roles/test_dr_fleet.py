"""playbooks/disaster_recovery.yml on a fleet of local hosts: the explicit target and confirmation,
serial batches that stop after a failed host, recovery of a fresh host verified by token only,
nexus_dr_backup_before, and a recovery that changes nothing leaving the server running.

Each inventory host is ansible_connection=local with its own data directory, environment file and
reference server port; the role's stop/start hooks drive the reference server through its ctl CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers.ansible import REPO, run_module, run_playbook
from tests.integration.roles.test_fleet import CTL, ctl, env_line, snapshot, start_command, start_script, write_inventory
from tests.nexus_server.harness import free_port, login

PLAYBOOK = REPO / 'playbooks' / 'disaster_recovery.yml'
BACKUP_PASSWORD = 'dr-fleet-backup-password'
KEY_PASSWORDS = {'nexus-a': 'dr key a', 'nexus-b': 'dr-key-"b"-$x'}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('molecule')]


def host_config(tmp_path, host, port, **extra):
    host_dir = tmp_path / host
    config = {
        'ansible_connection': 'local',
        'ansible_python_interpreter': sys.executable,
        'nexus_dr_data_dir': str(host_dir / 'nexus'),
        'nexus_dr_backup_path': str(host_dir / 'backups'),
        'nexus_dr_url': 'http://127.0.0.1:%d' % port,
        'nexus_dr_environment_file': str(host_dir / 'environment'),
        'nexus_dr_stop_command': '%s %s stop --workdir %s/nexus' % (sys.executable, CTL, host_dir),
        'nexus_dr_start_command': start_command(host_dir, port),
        'nexus_dr_key_password': KEY_PASSWORDS.get(host, 'dr-key'),
        'nexus_dr_install_deps': False,
        'nexus_dr_owner': '', 'nexus_dr_group': '',
        'nexus_dr_environment_owner': '', 'nexus_dr_environment_group': '',
        'nexus_dr_health_timeout': 40,
        'nexus_dr_report_dir': str(tmp_path / 'reports'),
    }
    config.update(extra)
    return config


def inventory(tmp_path, hosts, name='inventory.yml'):
    path = tmp_path / name
    write_inventory(path, {'all': {'children': {'nexus_servers': {'hosts': hosts}}}})
    path.chmod(0o600)
    return str(path)


def start(host_dir, port):
    subprocess.run(['sh', '-c', start_script(host_dir, port)], check=True, capture_output=True, timeout=120)


def server_pid(host_dir):
    return json.loads((host_dir / 'nexus' / 'nexus.json').read_text())['pid']


def tree_digest(root):
    """Every file under ``root`` (names, modes, bytes): equal digests mean an untouched tree."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name == 'nexus.log':
                continue
            digest.update(path.encode() + b'%o' % os.lstat(path).st_mode)
            with open(path, 'rb') as fh:
                digest.update(fh.read())
    return digest.hexdigest()


def backup(host_dir, name=None):
    args = dict(data_dir=str(host_dir / 'nexus'), dest=str(host_dir / 'backups'), backup_password=BACKUP_PASSWORD)
    if name:
        args['name'] = name
    out = run_module('nexus.secrets.nexus_backup', args)
    assert not out.get('failed'), out
    return out['path']


@pytest.fixture
def fleet(tmp_path):
    """Two running, seeded, backed-up hosts: {host: port}."""
    ports = {}
    try:
        for index, host in enumerate(sorted(KEY_PASSWORDS)):
            host_dir = tmp_path / host
            host_dir.mkdir()
            (host_dir / 'environment').write_text(env_line(KEY_PASSWORDS[host]))
            (host_dir / 'environment').chmod(0o600)
            ports[host] = free_port()
            start(host_dir, ports[host])
            ctl('seed', '--url', 'http://127.0.0.1:%d' % ports[host], '--count', str(3 + index), '--prefix', host)
            backup(host_dir)
        yield ports
    finally:
        for host in KEY_PASSWORDS:
            if (tmp_path / host / 'nexus' / 'nexus.pid').exists():
                ctl('stop', '--kill', '--workdir', str(tmp_path / host / 'nexus'))


def fleet_state(tmp_path, ports):
    return {host: (server_pid(tmp_path / host), tree_digest(tmp_path / host / 'nexus'),
                   (tmp_path / host / 'environment').read_bytes()) for host in ports}


def test_refuses_without_target_or_confirmation(fleet, tmp_path):
    ports = fleet
    hosts = {h: host_config(tmp_path, h, p) for h, p in ports.items()}
    inv = inventory(tmp_path, hosts)
    before = fleet_state(tmp_path, ports)
    common = {'nexus_dr_backup_password': BACKUP_PASSWORD, 'nexus_dr_api_password': 'admin'}
    runs = [
        ({}, None, 'nexus_dr_hosts (the hosts to recover; there is no default) and nexus_dr_confirm=true'),
        ({'nexus_dr_hosts': 'nexus_servers'}, None, 'Missing: nexus_dr_confirm=true'),
        ({'nexus_dr_hosts': 'nexus_servers', 'nexus_dr_confirm': False}, None, 'Missing: nexus_dr_confirm=true'),
        ({'nexus_dr_confirm': True}, None, 'Missing: nexus_dr_hosts'),
        # A limit that leaves out the check play's localhost still meets the confirmation check.
        ({'nexus_dr_hosts': 'nexus_servers'}, 'nexus-a', 'Nothing was touched: set nexus_dr_confirm=true'),
    ]
    for extra, limit, message in runs:
        res = run_playbook(PLAYBOOK, inventory=inv, extra_vars=dict(common, **extra), limit=limit, json_output=False)
        assert res.rc != 0, (extra, limit, res.stdout[-3000:])
        assert message in res.stdout, (extra, limit, res.stdout[-3000:])
        assert 'Run phase preflight' not in res.stdout
    assert fleet_state(tmp_path, ports) == before
    for host, port in ports.items():
        assert len(snapshot('http://127.0.0.1:%d' % port)) == 3 + sorted(ports).index(host)


def test_serial_run_stops_after_a_failed_host(fleet, tmp_path):
    ports = fleet
    hosts = {h: host_config(tmp_path, h, p) for h, p in ports.items()}
    # nexus-a's keyring password is wrong: it fails (in preflight) and the run must stop there.
    hosts['nexus-a']['nexus_dr_key_password'] = 'not-the-keyring-password'
    inv = inventory(tmp_path, hosts)
    before = fleet_state(tmp_path, ports)
    res = run_playbook(PLAYBOOK, inventory=inv, extra_vars={
        'nexus_dr_hosts': 'nexus_servers', 'nexus_dr_confirm': True, 'nexus_dr_serial': 1,
        'nexus_dr_backup_password': BACKUP_PASSWORD, 'nexus_dr_api_password': 'admin',
        'nexus_dr_skip_unchanged': False})
    assert res.rc != 0
    assert res.stats['nexus-a']['failures'] == 1, res.stats
    assert 'nexus-b' not in res.stats or res.stats['nexus-b']['ok'] == 0, res.stats
    assert fleet_state(tmp_path, ports) == before
    report = json.loads(next((tmp_path / 'reports').glob('nexus-dr-*.json')).read_text())
    assert [h['host'] for h in report['hosts']] == ['nexus-a'] and report['missing_hosts'] == ['nexus-b']


@pytest.fixture
def one_host(tmp_path):
    """One running host nexus-a: (its directory, port, url); its server is stopped at teardown."""
    host_dir = tmp_path / 'nexus-a'
    host_dir.mkdir()
    (host_dir / 'environment').write_text(env_line(KEY_PASSWORDS['nexus-a']))
    port = free_port()
    start(host_dir, port)
    try:
        yield host_dir, port, 'http://127.0.0.1:%d' % port
    finally:
        ctl('stop', '--kill', '--workdir', str(host_dir / 'nexus'))


def test_fresh_host_recovered_and_verified_by_token_only(one_host, tmp_path):
    host_dir, port, url = one_host
    ctl('seed', '--url', url, '--count', '7', '--prefix', 'fresh')
    expected = snapshot(url)
    backup(host_dir)
    token = login(url)
    # The host dies: no server, no data directory, no environment file (nor its directory).
    ctl('stop', '--kill', '--workdir', str(host_dir / 'nexus'))
    shutil.rmtree(host_dir / 'nexus')
    (host_dir / 'environment').unlink()
    env_file = host_dir / 'etc' / 'nexus' / 'environment'
    config = host_config(tmp_path, 'nexus-a', port, nexus_dr_environment_file=str(env_file),
                         nexus_dr_start_command="sh -c 'set -a && . %s && set +a && exec %s %s start "
                                                "--workdir %s/nexus --port %d'"
                                                % (env_file, sys.executable, CTL, host_dir, port))
    res = run_playbook(PLAYBOOK, inventory=inventory(tmp_path, {'nexus-a': config}), extra_vars={
        'nexus_dr_hosts': 'nexus-a', 'nexus_dr_confirm': True, 'nexus_dr_backup_password': BACKUP_PASSWORD,
        'nexus_dr_api_token': token, 'nexus_dr_api_password': '', 'nexus_dr_api_key': '',
        'nexus_dr_verify_read': 'all'}, env={'NEXUS_PASSWORD': '', 'NEXUS_API_KEY': ''})
    assert res.rc == 0, res.stdout[-8000:] + res.stderr[-3000:]
    assert snapshot(url) == expected
    assert oct((host_dir / 'nexus').stat().st_mode & 0o777) == '0o700'
    assert oct(env_file.stat().st_mode & 0o777) == '0o600'
    assert oct(env_file.parent.stat().st_mode & 0o777) == '0o750'
    assert sorted(p.name for p in env_file.parent.iterdir()) == ['environment']
    report = json.loads(next((tmp_path / 'reports').glob('nexus-dr-*.json')).read_text())
    assert report['hosts'][0]['verified_with'] == 'token' and report['hosts'][0]['live_secrets'] == 7
    assert report['hosts'][0]['server_restarted'] is True
    # One decryption: the restore swapped in the copy preflight staged and validated.
    assert report['hosts'][0]['restore_staged_copy_used'] is True
    stage = res.task('nexus.secrets.disaster_recovery : Decrypt and validate the backup into a staged copy, and unlock '
                     'its keyring with the keyring password', host='nexus-a')
    assert stage['staged'] is True and stage['staged_copy_used'] is False
    restore = res.task('nexus.secrets.disaster_recovery : Restore the backup into the data directory (the current '
                       'files are kept as a pre-restore copy)', host='nexus-a')
    assert restore['staged_copy_used'] is True and 'staged_copy_note' not in restore
    assert os.listdir(str(tmp_path / 'nexus-a' / '.nexus-secrets-restore')) == ['lock']
    # The same report is published with set_stats, for AWX's job artifacts.
    stats = res.task("nexus.secrets.disaster_recovery : Publish the report with the play's statistics",
                     host='nexus-a')['ansible_stats']
    assert stats['data']['nexus_disaster_recovery_report'] == report and stats['aggregate'] is False
    assert token not in res.stdout + res.stderr


def test_backup_before_and_unchanged_server_left_running(one_host, tmp_path):
    host_dir, port, url = one_host
    states = []
    for day, count in (('01', 2), ('02', 4), ('03', 6)):
        ctl('seed', '--url', url, '--count', str(count), '--prefix', 'day' + day)
        states.append(snapshot(url))
        backup(host_dir, 'nexus-backup-2025-03-%s-120000.tar.gz.enc' % day)
    config = host_config(tmp_path, 'nexus-a', port)
    inv = inventory(tmp_path, {'nexus-a': config})
    extra = {'nexus_dr_hosts': 'nexus-a', 'nexus_dr_confirm': True, 'nexus_dr_backup_password': BACKUP_PASSWORD,
             'nexus_dr_api_password': 'admin', 'nexus_dr_backup_before': '2025-03-02T23:59:59'}
    res = run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra)
    assert res.rc == 0, res.stdout[-8000:] + res.stderr[-3000:]
    assert snapshot(url) == states[1]
    report = json.loads(next((tmp_path / 'reports').glob('nexus-dr-*.json')).read_text())['hosts'][0]
    assert report['backup'].endswith('nexus-backup-2025-03-02-120000.tar.gz.enc'), report
    assert report['server_restarted'] is True

    # Again: the server already serves that backup, so it is neither stopped nor restarted.
    pid, env_before = server_pid(host_dir), (host_dir / 'environment').read_bytes()
    shutil.rmtree(tmp_path / 'reports')
    res = run_playbook(PLAYBOOK, inventory=inv, extra_vars=extra)
    assert res.rc == 0, res.stdout[-8000:] + res.stderr[-3000:]
    report = json.loads(next((tmp_path / 'reports').glob('nexus-dr-*.json')).read_text())['hosts'][0]
    assert [p['name'] for p in report['phases']] == ['preflight', 'password', 'verify']
    assert report['server_restarted'] is False and report['status'] == 'recovered'
    assert report['downtime_seconds'] == 0 and report['restore_staged_copy_used'] is None
    # The comparison read the staged copy (no second decryption), and the unused copy was removed.
    check = res.task_results('nexus.secrets.disaster_recovery : Check the server through its API', host='nexus-a')[0]
    assert check['backup_match']['matches'] is True and check['backup_match']['staged_copy_used'] is True
    assert os.listdir(str(host_dir / '.nexus-secrets-restore')) == ['lock']
    assert server_pid(host_dir) == pid
    assert (host_dir / 'environment').read_bytes() == env_before
    assert snapshot(url) == states[1]

    # A time before every backup: nothing to restore, nothing touched.
    res = run_playbook(PLAYBOOK, inventory=inv, extra_vars=dict(extra, nexus_dr_backup_before='2025-02-28'))
    assert res.rc != 0 and 'taken at or before 2025-02-28: no backup files found' in res.stdout
    assert server_pid(host_dir) == pid


def test_drill_refuses_without_hosts(tmp_path):
    inv = inventory(tmp_path, {'nexus-a': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}})
    res = run_playbook(REPO / 'playbooks' / 'restore_drill.yml', inventory=inv, json_output=False)
    assert res.rc != 0
    assert 'Missing: nexus_drill_hosts (the hosts to drill; there is no default)' in res.stdout, res.stdout[-3000:]
    assert 'Find and validate the newest backup' not in res.stdout
