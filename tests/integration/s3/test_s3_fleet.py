"""Fleets backed up to one bucket of a real S3 server (rclone serve s3) with playbooks/backup.yml,
and recovered from it with playbooks/disaster_recovery.yml.

Each inventory host is ansible_connection=local with its own data directory and reference server
(the helpers of tests/integration/roles/test_fleet.py). The AWS credentials and endpoint are in the
controller's environment only, as an AWX credential injects them; the roles pass them on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers.ansible import REPO, run_playbook
from tests.integration.roles.test_fleet import (
    CTL, HOSTS, KEY_PASSWORDS, SECRETS, ctl, host_vars, snapshot, task_results, write_inventory)
from tests.integration.s3.conftest import BUCKET
from tests.nexus_server.harness import ApiClient, free_port, login

pytestmark = [pytest.mark.slow]
PREFIX = 'nexus-backups'


def host_result(res, suffix, host):
    """The result for ``host`` of the last task whose name ends with ``suffix`` (role tasks are prefixed)."""
    found = [hosts[host] for hosts in task_results(res, suffix) if host in hosts]
    assert found, 'no task %r for %s' % (suffix, host)
    return found[-1]


def objects(server, host):
    folder = server.root / BUCKET / PREFIX / host
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fleet_to_one_bucket_twice_with_keep_last_1_then_disaster_recovery_from_it(fleet, s3_server, tmp_path):
    ports = fleet
    inventory = write_inventory(tmp_path / 'inventory.yml', host_vars(tmp_path, ports))
    backup_vars = {'nexus_backup_password': SECRETS['backup_password'], 'nexus_backup_install_deps': False,
                   'nexus_backup_keep_last': 1, 'nexus_backup_s3_bucket': BUCKET}
    env = s3_server.env()  # the controller's environment: AWS_ACCESS_KEY_ID, ..., AWS_ENDPOINT_URL

    first = run_playbook(REPO / 'playbooks' / 'backup.yml', inventory=inventory, extra_vars=backup_vars, env=env)
    assert first.rc == 0, first.stdout[-6000:] + first.stderr[-3000:]
    first_objects = {host: objects(s3_server, host) for host in HOSTS}
    for host in HOSTS:  # a change on every server, so the second backup differs from the first
        ApiClient('http://127.0.0.1:%d' % ports[host], token=login('http://127.0.0.1:%d' % ports[host])).create(
            '%s/added-between-runs' % host, 'v2')
    second = run_playbook(REPO / 'playbooks' / 'backup.yml', inventory=inventory, extra_vars=backup_vars, env=env)
    assert second.rc == 0, second.stdout[-6000:] + second.stderr[-3000:]

    for host in HOSTS:
        local = sorted((tmp_path / host / 'backups' / host).glob('nexus-backup-*.tar.gz.enc'))  # <dest>/<inventory_hostname>
        assert len(local) == 1
        newest = local[0].name
        assert first_objects[host][0] != newest, 'the second run made a new backup'
        # Exactly this host's newest backup and its sidecar under its own prefix.
        assert objects(s3_server, host) == [newest, newest + '.sha256'], host
        stored = s3_server.root / BUCKET / PREFIX / host / newest
        digest = hashlib.sha256(stored.read_bytes()).hexdigest()
        assert digest == hashlib.sha256(local[0].read_bytes()).hexdigest()
        assert (stored.parent / (newest + '.sha256')).read_text().split()[0] == digest
        result = host_result(second, 'Summarise this host\'s backup', host)['ansible_facts']['nexus_backup_result']
        assert result['uploaded'] == '%s/%s/%s' % (PREFIX, host, newest)
    expected = {host: snapshot('http://127.0.0.1:%d' % ports[host]) for host in HOSTS}
    assert [len(expected[h]) for h in HOSTS] == [5, 6, 7]

    # The disaster: servers killed, data dirs emptied, local backups gone. Only the bucket is left.
    for host in HOSTS:
        ctl('stop', '--kill', '--workdir', str(tmp_path / host / 'nexus'))
        (tmp_path / host / 'nexus' / 'nexus.db').unlink()
        shutil.rmtree(tmp_path / host / 'nexus' / 'data' / 'keys')
        shutil.rmtree(tmp_path / host / 'backups')
    # nexus-a's newest object is damaged (its sidecar matches it, so only decryption can tell):
    # recovery falls back to the next older one.
    damaged = 'nexus-backup-2099-01-01-000000.tar.gz.enc'
    garbage = b'\x00' * 4096
    client = s3_server.client()
    client.put_object(Bucket=BUCKET, Key='%s/nexus-a/%s' % (PREFIX, damaged), Body=garbage)
    client.put_object(Bucket=BUCKET, Key='%s/nexus-a/%s.sha256' % (PREFIX, damaged),
                      Body=('%s  %s\n' % (hashlib.sha256(garbage).hexdigest(), damaged)).encode())

    inventory_data = host_vars(tmp_path, ports)
    for host in HOSTS:
        inventory_data['all']['children']['nexus_servers']['hosts'][host].update({
            'nexus_dr_key_password': KEY_PASSWORDS[host],
            'nexus_dr_s3_download_dir': str(tmp_path / host / 's3-download')})
    dr_inventory = tmp_path / 'dr-inventory.yml'
    write_inventory(dr_inventory, inventory_data)
    dr_inventory.chmod(0o600)
    res = run_playbook(REPO / 'playbooks' / 'disaster_recovery.yml', inventory=str(dr_inventory), env=env, extra_vars={
        'nexus_dr_backup_password': SECRETS['backup_password'], 'nexus_dr_api_password': SECRETS['api_password'],
        'nexus_dr_owner': '', 'nexus_dr_group': '', 'nexus_dr_environment_owner': '',
        'nexus_dr_environment_group': '', 'nexus_dr_report_dir': str(tmp_path / 'reports'),
        'nexus_dr_health_timeout': 40, 'nexus_dr_s3_bucket': BUCKET,
        'nexus_dr_hosts': 'nexus_servers', 'nexus_dr_confirm': True, 'nexus_dr_install_deps': False})
    assert res.rc == 0, res.stdout[-8000:] + res.stderr[-3000:]

    for host in HOSTS:
        assert snapshot('http://127.0.0.1:%d' % ports[host]) == expected[host], host
        listing = host_result(res, 'List this host\'s backups in object storage', host)
        assert listing['backups'] and all(b['key'].startswith('%s/%s/' % (PREFIX, host)) for b in listing['backups'])
        newest = objects(s3_server, host)[0]
        assert sorted(p.name for p in (tmp_path / host / 's3-download').iterdir()) == [newest, newest + '.sha256']
    listed_a = [b['name'] for b in host_result(res, 'List this host\'s backups in object storage', 'nexus-a')['backups']]
    assert listed_a[0] == damaged and len(listed_a) == 2
    for secret in list(KEY_PASSWORDS.values()) + [SECRETS['backup_password'], env['AWS_SECRET_ACCESS_KEY']]:
        assert secret not in res.stdout + res.stderr


def test_one_broken_database_in_a_larger_fleet_fails_alone_the_others_upload(s3_server, tmp_path):
    """12 hosts (20 take well over a minute on 2 cores): one with a damaged nexus.db. Then the restore
    drill of one host from the bucket."""
    count = 12
    template = tmp_path / 'template'
    port = free_port()
    subprocess.run([sys.executable, CTL, 'start', '--workdir', str(template), '--port', str(port)], check=True,
                   capture_output=True, timeout=120, env=dict(os.environ, NEXUS_KEY_PASSWORD='template-key'))
    try:
        ctl('seed', '--url', 'http://127.0.0.1:%d' % port, '--count', '3', '--prefix', 'fleet')
    finally:
        ctl('stop', '--workdir', str(template))
    hosts = {}
    names = ['node%02d' % i for i in range(count)]
    broken = names[7]
    for name in names:
        data = tmp_path / name / 'nexus'
        shutil.copytree(template / 'data', data / 'data')
        shutil.copy2(template / 'nexus.db', data / 'nexus.db')
        hosts[name] = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                       'nexus_backup_data_dir': str(data),
                       'nexus_backup_dest': str(tmp_path / name / 'backups')}
    (tmp_path / broken / 'nexus' / 'nexus.db').write_bytes(b'this is not an SQLite database' * 200)
    inventory = write_inventory(tmp_path / 'inventory.yml', {'all': {'children': {'nexus_servers': {'hosts': hosts}}}})
    env = dict(s3_server.env(), ANSIBLE_FORKS='12')
    res = run_playbook(REPO / 'playbooks' / 'backup.yml', inventory=inventory, env=env, extra_vars={
        'nexus_backup_password': SECRETS['backup_password'], 'nexus_backup_install_deps': False,
        'nexus_backup_verify': False, 'nexus_backup_keep_last': 1, 'nexus_backup_s3_bucket': BUCKET})
    assert res.rc != 0
    assert {h for h, s in res.stats.items() if s['failures']} == {broken}
    summary = next(iter(list(task_results(res, 'Show the fleet backup summary'))[0].values()))['msg']
    assert '%d of %d hosts backed up, 1 failed' % (count - 1, count) in summary
    lines = [r['msg'] for r in next(iter(list(task_results(res, 'Show each host\'s backup result'))[0].values()))['results']]
    assert [line for line in lines if ': failed' in line] and all(
        line.startswith(broken + ': failed') for line in lines if ': failed' in line), lines
    for name in names:
        if name == broken:
            assert objects(s3_server, name) == []
        else:
            stored = objects(s3_server, name)
            assert len(stored) == 2 and stored[1] == stored[0] + '.sha256', (name, stored)

    # The restore drill of one host from the bucket (its local backups gone): served and checked.
    shutil.rmtree(tmp_path / 'node00' / 'backups')
    drill = run_playbook(REPO / 'playbooks' / 'restore_drill.yml', inventory=inventory, env=s3_server.env(),
                         limit='node00', extra_vars={
                             'nexus_drill_hosts': 'node00', 'nexus_drill_install_deps': False,
                             'nexus_drill_s3_bucket': BUCKET, 'nexus_drill_backup_password': SECRETS['backup_password'],
                             'nexus_drill_key_password': 'template-key', 'nexus_drill_api_password': 'admin',
                             'nexus_drill_server_command': '%s %s' % (sys.executable, REPO / 'tests' / 'nexus_server' / 'nexus.py'),
                             'nexus_drill_s3_download_dir': str(tmp_path / 'drill-download')})
    assert drill.rc == 0, drill.stdout[-6000:] + drill.stderr[-2000:]
    result = host_result(drill, 'Summarise this host\'s drill', 'node00')['ansible_facts']['nexus_drill_result']
    assert result['status'] == 'passed' and int(result['served_secrets']) == 3, result
    assert result['backup'] == str(tmp_path / 'drill-download' / objects(s3_server, 'node00')[0])
    assert list((tmp_path / 'drill-download').iterdir()) == []
