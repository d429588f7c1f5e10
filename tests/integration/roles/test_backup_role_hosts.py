"""The backup role across hosts that share a directory, with metrics, in check mode and run twice.

Every inventory host is ansible_connection=local; they back up one reference server's data dir each
into their own <dest>/<inventory_hostname>.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys

import pytest
import yaml

from ansible_collections.nexus.secrets.plugins.module_utils import _retention

from tests.helpers.ansible import REPO, run_playbook

PASSWORD = 'role-hosts-backup-password'
HOSTS = ('nexus-a', 'nexus-b')
PLAYBOOK = REPO / 'playbooks' / 'backup.yml'
SUMMARY = "nexus.secrets.backup : Summarise this host's backup"

pytestmark = [pytest.mark.slow]


def inventory(tmp_path, data_dirs, name='inventory.yml', **extra):
    hosts = {}
    for host, data_dir in data_dirs.items():
        hosts[host] = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                       'nexus_backup_data_dir': str(data_dir),
                       'nexus_backup_metrics_dir': str(tmp_path / 'metrics' / host)}
        hosts[host].update(extra.get(host, {}))
        (tmp_path / 'metrics' / host).mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(yaml.safe_dump({'all': {'children': {'nexus_servers': {'hosts': hosts}}}}))
    return str(path)


def common(tmp_path, **extra):
    out = {'nexus_backup_password': PASSWORD, 'nexus_backup_install_deps': False,
           'nexus_backup_dest': str(tmp_path / 'shared'), 'nexus_backup_fetch_dir': str(tmp_path / 'fetched'),
           'nexus_backup_keep_last': 1}
    out.update(extra)
    return out


def backups(directory):
    return sorted(os.path.basename(p) for p, dummy in _retention.dated_backups(str(directory))) \
        if directory.is_dir() else []


def metrics(tmp_path, host):
    text = (tmp_path / 'metrics' / host / 'nexus_backup.prom').read_text()
    return dict((m.group(1), float(m.group(2))) for m in re.finditer(r'^(\w+) (\S+)$', text, re.M))


@pytest.fixture
def servers(nexus_server_factory):
    made = {}
    for index, host in enumerate(HOSTS):
        server = nexus_server_factory()
        client = server.client()
        for i in range(3 + index):
            assert client.create('%s/secret-%d' % (host, i), 'value-%d' % i).status_code == 201
        made[host] = server
    return made


def test_hosts_sharing_one_dest_keep_their_own_newest_backup(servers, tmp_path):
    inv = inventory(tmp_path, dict((h, s.workdir) for h, s in servers.items()))
    first = run_playbook(PLAYBOOK, inventory=inv, extra_vars=common(tmp_path))
    assert first.rc == 0, first.stdout[-5000:] + first.stderr[-3000:]
    names_first = dict((h, backups(tmp_path / 'shared' / h)) for h in HOSTS)
    second = run_playbook(PLAYBOOK, inventory=inv, extra_vars=common(tmp_path))
    assert second.rc == 0, second.stdout[-5000:] + second.stderr[-3000:]
    assert sorted(os.listdir(str(tmp_path / 'shared'))) == sorted(HOSTS)  # nothing directly in the shared dir
    for index, host in enumerate(HOSTS):
        result = second.task(SUMMARY, host)['ansible_facts']['nexus_backup_result']
        newest = os.path.basename(result['path'])
        assert result['status'] == 'ok' and result['path'].startswith(str(tmp_path / 'shared' / host) + '/')
        # keep_last 1, per host: each keeps its own newest backup, never the other host's.
        assert backups(tmp_path / 'shared' / host) == [newest] and newest not in names_first[host]
        assert (tmp_path / 'shared' / host / (newest + '.sha256')).exists()
        # The controller's copies get the same retention.
        assert sorted(os.listdir(str(tmp_path / 'fetched' / host))) == [newest, newest + '.sha256']
        assert (tmp_path / 'fetched' / host / newest).read_bytes() == (tmp_path / 'shared' / host / newest).read_bytes()
        values = metrics(tmp_path, host)
        assert values['nexus_backup_last_run_success'] == 1 and values['nexus_backup_last_run_busy'] == 0
        assert values['nexus_backup_secrets'] == 3 + index
        assert values['nexus_backup_size_bytes'] == (tmp_path / 'shared' / host / newest).stat().st_size
        assert values['nexus_backup_verify_success'] == 1 and 'nexus_backup_upload_success' not in values
        assert values['nexus_backup_last_success_timestamp_seconds'] == values['nexus_backup_last_run_timestamp_seconds']
        assert oct((tmp_path / 'metrics' / host / 'nexus_backup.prom').stat().st_mode & 0o777) == '0o644'
        assert os.listdir(str(tmp_path / 'metrics' / host)) == ['nexus_backup.prom']  # no temp file left
    assert PASSWORD not in second.stdout + second.stderr


def test_failure_and_busy_metrics_then_check_mode_writes_nothing(servers, tmp_path):
    host = HOSTS[0]
    data_dirs = {host: servers[host].workdir}
    inv = inventory(tmp_path, data_dirs)
    ok = run_playbook(PLAYBOOK, inventory=inv, extra_vars=common(tmp_path))
    assert ok.rc == 0, ok.stdout[-5000:]
    success = metrics(tmp_path, host)

    # A failed run: metrics say so, the last success is kept, and the role still fails the host.
    broken = inventory(tmp_path, {host: tmp_path / 'missing'}, name='broken.yml')
    failed = run_playbook(PLAYBOOK, inventory=broken, extra_vars=common(tmp_path))
    assert failed.rc != 0 and failed.stats[host]['failures'] == 1
    values = metrics(tmp_path, host)
    assert values['nexus_backup_last_run_success'] == 0 and values['nexus_backup_last_run_busy'] == 0
    assert values['nexus_backup_last_success_timestamp_seconds'] == success['nexus_backup_last_success_timestamp_seconds']
    assert values['nexus_backup_size_bytes'] == success['nexus_backup_size_bytes']
    assert values['nexus_backup_last_run_timestamp_seconds'] >= success['nexus_backup_last_run_timestamp_seconds']
    assert 'nexus_backup_verify_success' not in values

    # Another run holds the host's lock: 'busy' (from nexus_backup's busy field), not failed.
    host_dest = tmp_path / 'shared' / host
    fd = os.open(str(host_dest), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        busy = run_playbook(PLAYBOOK, inventory=inv, extra_vars=common(tmp_path))
    finally:
        os.close(fd)
    assert busy.rc == 0, busy.stdout[-5000:]
    result = busy.task(SUMMARY, host)['ansible_facts']['nexus_backup_result']
    assert result['status'] == 'busy'
    assert metrics(tmp_path, host)['nexus_backup_last_run_busy'] == 1

    # Check mode (issue: verify and fetch used to fail): predicts, passes, writes nothing.
    before = sorted(str(p) + repr(p.stat().st_mtime_ns) for p in tmp_path.rglob('*') if 'nexus-' not in p.parent.name
                    or p.is_file())
    prom_before = (tmp_path / 'metrics' / host / 'nexus_backup.prom').read_bytes()
    check = run_playbook(PLAYBOOK, inventory=inv, check=True, extra_vars=common(tmp_path))
    assert check.rc == 0, check.stdout[-6000:] + check.stderr[-2000:]
    result = check.task(SUMMARY, host)['ansible_facts']['nexus_backup_result']
    assert result['status'] == 'ok' and result['check_mode'] and result['path'].startswith(str(host_dest) + '/')
    assert not os.path.exists(result['path'])
    assert (tmp_path / 'metrics' / host / 'nexus_backup.prom').read_bytes() == prom_before
    after = sorted(str(p) + repr(p.stat().st_mtime_ns) for p in tmp_path.rglob('*') if 'nexus-' not in p.parent.name
                   or p.is_file())
    assert after == before


def test_the_role_runs_twice_in_one_play(servers, tmp_path):
    host = HOSTS[0]
    inv = inventory(tmp_path, {host: servers[host].workdir})
    play = tmp_path / 'twice.yml'
    play.write_text(yaml.safe_dump([{'hosts': 'nexus_servers', 'gather_facts': False, 'tasks': [
        {'name': 'A first run that fails', 'block': [
            {'name': 'First run, of a data dir that does not exist',
             'ansible.builtin.include_role': {'name': 'nexus.secrets.backup'},
             'vars': {'nexus_backup_data_dir': str(tmp_path / 'missing')}}],
         'rescue': [{'name': 'Keep the first result', 'ansible.builtin.set_fact': {'first': '{{ nexus_backup_result }}'}}]},
        {'name': 'Second run', 'ansible.builtin.include_role': {'name': 'nexus.secrets.backup'}},
    ]}]))
    res = run_playbook(play, inventory=inv, extra_vars=common(tmp_path, nexus_backup_fetch_dir=''))
    assert res.rc == 0, res.stdout[-5000:]
    first = res.task('Keep the first result', host)['ansible_facts']['first']
    assert first['status'] == 'failed' and 'does not exist' in first['error']
    # The second run starts from empty facts: the first run's failure is not carried into it.
    second = res.task(SUMMARY, host)['ansible_facts']['nexus_backup_result']
    assert second['status'] == 'ok' and second['error'] == '' and os.path.isfile(second['path'])
    assert metrics(tmp_path, host)['nexus_backup_last_run_success'] == 1
