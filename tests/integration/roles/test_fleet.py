"""A fleet of three local hosts: playbooks/backup.yml, then, after each host's data is destroyed,
playbooks/disaster_recovery.yml for all of them at once.

Each inventory host is ansible_connection=local with its own data directory, environment file and
reference server port; the role's stop/start hooks drive the reference server through its ctl CLI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.helpers.ansible import REPO, run_playbook
from tests.nexus_server.harness import ApiClient, free_port, login

CTL = str(REPO / 'tests' / 'nexus_server' / 'ctl.py')
HOSTS = ('nexus-a', 'nexus-b', 'nexus-c')
KEY_PASSWORDS = {'nexus-a': 'fleet-key-a', 'nexus-b': 'fleet key "b" $x', 'nexus-c': 'fleet-key-c\\'}
SECRETS = {'backup_password': 'fleet-backup-password', 'api_password': 'admin'}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('molecule')]


def env_line(password):
    escaped = ''.join('\\' + c if c in '\\"`$' else c for c in password)
    return 'NEXUS_KEY_PASSWORD="%s"\n' % escaped


def start_script(host_dir, port):
    """Start the host's server with NEXUS_KEY_PASSWORD read from its environment file, as systemd would."""
    return ('set -a && . %s/environment && set +a && exec %s %s start --workdir %s/nexus --port %d'
            % (host_dir, sys.executable, CTL, host_dir, port))


def start_command(host_dir, port):
    return "sh -c '%s'" % start_script(host_dir, port)


def ctl(*args):
    proc = subprocess.run([sys.executable, CTL, *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def snapshot(url):
    """Every live secret as {path: (value, metadata)}, read through the API."""
    client = ApiClient(url, token=login(url))
    listing = client.list().json()['secrets']
    values = {}
    for item in listing:
        body = client.get(item['path']).json()
        values[item['path']] = (body['value'], body.get('metadata') or {})
    return values


def host_vars(tmp_path, ports, **overrides):
    hosts = {}
    for host in HOSTS:
        host_dir = tmp_path / host
        hosts[host] = {
            'ansible_connection': 'local',
            'ansible_python_interpreter': sys.executable,
            'nexus_backup_data_dir': str(host_dir / 'nexus'),
            'nexus_backup_dest': str(host_dir / 'backups'),
            'nexus_dr_data_dir': str(host_dir / 'nexus'),
            # The backup role writes into <nexus_backup_dest>/<inventory_hostname>.
            'nexus_dr_backup_path': str(host_dir / 'backups' / host),
            'nexus_dr_url': 'http://127.0.0.1:%d' % ports[host],
            'nexus_dr_environment_file': str(host_dir / 'environment'),
            'nexus_dr_stop_command': '%s %s stop --workdir %s/nexus' % (sys.executable, CTL, host_dir),
            'nexus_dr_start_command': start_command(host_dir, ports[host]),
        }
        hosts[host].update(overrides.get(host, {}))
    return {'all': {'children': {'nexus_servers': {'hosts': hosts}}}}


def write_inventory(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def task_results(res, suffix):
    for play in res.data.get('plays', []):
        for task in play['tasks']:
            if task['task']['name'].endswith(suffix):
                yield task['hosts']


@pytest.fixture
def fleet(tmp_path):
    ports = {}
    try:
        for index, host in enumerate(HOSTS):
            host_dir = tmp_path / host
            host_dir.mkdir()
            env_file = host_dir / 'environment'
            env_file.write_text(env_line(KEY_PASSWORDS[host]))
            env_file.chmod(0o600)
            ports[host] = free_port()
            subprocess.run(['sh', '-c', start_script(host_dir, ports[host])], check=True,
                           capture_output=True, timeout=120)
            ctl('seed', '--url', 'http://127.0.0.1:%d' % ports[host], '--count', str(4 + index), '--prefix', host)
        yield ports
    finally:
        for host in HOSTS:
            if (tmp_path / host / 'nexus').exists():
                ctl('stop', '--kill', '--workdir', str(tmp_path / host / 'nexus'))


def test_fleet_backup_then_disaster_recovery(fleet, tmp_path):
    ports = fleet
    common = {'nexus_backup_password': SECRETS['backup_password'], 'nexus_backup_install_deps': False,
              'nexus_backup_fetch_dir': str(tmp_path / 'fetched')}

    # One host with a wrong data directory: the other two are still backed up, all three summarised.
    broken = write_inventory(tmp_path / 'broken.yml', host_vars(
        tmp_path, ports, **{'nexus-c': {'nexus_backup_data_dir': str(tmp_path / 'nexus-c' / 'missing')}}))
    res = run_playbook(REPO / 'playbooks' / 'backup.yml', inventory=broken, extra_vars=common)
    assert res.rc != 0
    assert res.stats['nexus-a']['failures'] == 0 and res.stats['nexus-b']['failures'] == 0
    assert res.stats['nexus-c']['failures'] == 1
    summary = list(task_results(res, 'Show the fleet backup summary'))[0]
    assert '2 of 3 hosts backed up, 1 failed' in next(iter(summary.values()))['msg']
    assert not (tmp_path / 'nexus-c' / 'backups').exists() or not list((tmp_path / 'nexus-c' / 'backups').rglob('*.enc'))

    inventory = write_inventory(tmp_path / 'inventory.yml', host_vars(tmp_path, ports))
    res = run_playbook(REPO / 'playbooks' / 'backup.yml', inventory=inventory, extra_vars=common)
    assert res.rc == 0, res.stdout[-6000:] + res.stderr[-3000:]

    expected = {host: snapshot('http://127.0.0.1:%d' % ports[host]) for host in HOSTS}
    assert [len(expected[h]) for h in HOSTS] == [4, 5, 6]

    # The disaster: every server killed, every database and keyring gone; nexus-c lost its local
    # backups too and is recovered from the copy fetched to the controller.
    for host in HOSTS:
        ctl('stop', '--kill', '--workdir', str(tmp_path / host / 'nexus'))
        (tmp_path / host / 'nexus' / 'nexus.db').unlink()
        shutil.rmtree(tmp_path / host / 'nexus' / 'data' / 'keys')
    shutil.rmtree(tmp_path / 'nexus-c' / 'backups')
    fetched_c = sorted((tmp_path / 'fetched' / 'nexus-c').glob('nexus-backup-*.tar.gz.enc'))
    assert len(fetched_c) == 1 and fetched_c[0].with_name(fetched_c[0].name + '.sha256').exists()

    # Each host has its own keyring password: a host variable, never on a command line.
    inventory_data = host_vars(tmp_path, ports)
    for host in HOSTS:
        inventory_data['all']['children']['nexus_servers']['hosts'][host]['nexus_dr_key_password'] = KEY_PASSWORDS[host]
    inventory_data['all']['children']['nexus_servers']['hosts']['nexus-c'].update({
        'nexus_dr_backup_controller_file': str(fetched_c[0]),
        'nexus_dr_backup_upload_dir': str(tmp_path / 'nexus-c' / 'uploaded')})
    dr_inventory = tmp_path / 'dr-inventory.yml'
    write_inventory(dr_inventory, inventory_data)
    dr_inventory.chmod(0o600)
    report_dir = tmp_path / 'reports'
    res = run_playbook(REPO / 'playbooks' / 'disaster_recovery.yml', inventory=str(dr_inventory), extra_vars={
        'nexus_dr_backup_password': SECRETS['backup_password'], 'nexus_dr_api_password': SECRETS['api_password'],
        'nexus_dr_owner': '', 'nexus_dr_group': '', 'nexus_dr_environment_owner': '',
        'nexus_dr_environment_group': '', 'nexus_dr_report_dir': str(report_dir), 'nexus_dr_health_timeout': 40,
        'nexus_dr_hosts': 'nexus_servers', 'nexus_dr_confirm': True, 'nexus_dr_serial': 3,
        'nexus_dr_install_deps': False})
    assert res.rc == 0, res.stdout[-8000:] + res.stderr[-3000:]

    for host in HOSTS:
        assert snapshot('http://127.0.0.1:%d' % ports[host]) == expected[host], host

    uploaded = tmp_path / 'nexus-c' / 'uploaded'
    assert sorted(p.name for p in uploaded.iterdir()) == [fetched_c[0].name, fetched_c[0].name + '.sha256']

    reports = sorted(report_dir.glob('nexus-dr-*.json'))
    assert len(reports) == 1 and reports[0].with_suffix('.md').exists()
    report = json.loads(reports[0].read_text())
    assert report['recovered'] == 3 and report['hosts_total'] == 3
    assert sorted((h['host'], h['live_secrets']) for h in report['hosts']) == [
        ('nexus-a', 4), ('nexus-b', 5), ('nexus-c', 6)]
    for secret in list(KEY_PASSWORDS.values()) + [SECRETS['backup_password']]:
        assert secret not in res.stdout + res.stderr
        assert secret not in reports[0].read_text() + reports[0].with_suffix('.md').read_text()
