"""Hostile backups and databases against the real modules (ansible-playbook runs).

Backups sealed with the right password (so the GCM tag passes) that carry a sparse 4 GiB
``nexus.db``, 19 MB or chained extended headers, or a database with schema objects NEXUS never
creates (an expression index, a recursive view named ``secrets``, a trigger, an extra table):
``nexus_restore`` refuses each with a pinned reason and leaves the data directory byte for byte as
it was; ``nexus_backup_info`` lists and verifies the valid backups beside them (a nexusctl one and
one ``nexus_backup`` took from a live reference server); ``nexus_backup`` refuses a live database
with a recursive ``secrets`` view at once and releases its destination.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.integration.restore.backups import leftovers, make_backup, make_data_dir, make_keyring, snapshot
from tests.nexus_server.harness import free_port
from tests.reliability import malicious
from tests.unit.module_utils import test_archive_bounds as archives
from tests.unit.module_utils import test_sqlite_bounds as databases
from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, KEYRING_PASSWORD, fixture_path

ARCHIVE_CASES = {
    # file time stamp: (archive case, pinned reason)
    '2030-01-01-000001': ('pax-gnu-sparse-1.0', 'a sparse file (PAX GNU.sparse.major)'),
    '2030-01-01-000002': ('chained-long-names-5000', 'chained extended headers (nexusctl writes at most one per member)'),
    '2030-01-01-000003': ('pax-header-19MB', 'a PAX extended header of'),
}
DATABASE_CASES = {
    '2030-01-01-000004': 'expression-index',
    '2030-01-01-000005': 'recursive-view-named-secrets',
    '2030-01-01-000006': 'trigger',
    '2030-01-01-000007': 'extra-table',
}
STATE_DIR = '.nexus-secrets-restore'
FIXTURE_NAME = 'nexus-backup-2025-12-04-001500.tar.gz.enc'
SERVER_NAME = 'nexus-backup-2025-12-05-001500.tar.gz.enc'


def backup_name(stamp):
    return 'nexus-backup-%s.tar.gz.enc' % stamp


def hostile_db_dir(path, case):
    drop, extra, dummy = databases.HOSTILE[case]
    make_keyring(path / 'data' / 'keys', KEYRING_PASSWORD)
    databases.nexus_db(path / 'nexus.db', extra, drop)
    return path


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('hostile')
    backups = root / 'backups'
    backups.mkdir()
    reasons = {}
    for stamp, (case, reason) in ARCHIVE_CASES.items():
        malicious.seal_tar(backups / backup_name(stamp), BACKUP_PASSWORD, archives.HOSTILE[case][0]())
        reasons[backup_name(stamp)] = 'decrypted, but its archive is unusable: the backup payload is not a tar ' \
                                      'archive (' + reason
    for stamp, case in DATABASE_CASES.items():
        source = hostile_db_dir(root / ('db-' + case), case)
        make_backup(backups / backup_name(stamp), BACKUP_PASSWORD, source)
        reasons[backup_name(stamp)] = 'nexus.db in the backup is not a NEXUS database: ' + databases.HOSTILE[case][2]
    shutil.copyfile(fixture_path('nexusctl-backup.tar.gz.enc'), str(backups / FIXTURE_NAME))
    data = make_data_dir(root / 'data', live=3, key_password=KEYRING_PASSWORD)
    return dict(root=root, backups=backups, reasons=reasons, data=data)


def no_traceback(result):
    text = json.dumps(result)
    assert 'Traceback' not in text and 'module_stderr' not in result and BACKUP_PASSWORD not in text, result


@pytest.mark.slow
def test_backup_info_lists_valid_backups_beside_hostile_ones(world, nexus_server_factory, ansible_module, tmp_path):
    server = nexus_server_factory(workdir=tmp_path / 'nexus', key_password=KEYRING_PASSWORD)
    client = server.client()
    for i in range(5):
        assert client.create('hostile/neighbour-%d' % i, 'value-%d' % i).status_code == 201
    listing = tmp_path / 'listing'
    shutil.copytree(str(world['backups']), str(listing))
    made = ansible_module('nexus.secrets.nexus_backup', {
        'data_dir': str(server.workdir), 'dest': str(listing), 'backup_password': BACKUP_PASSWORD,
        'name': SERVER_NAME})
    assert made.get('failed') is not True and made['secrets'] == 5, made
    verify_tmp = tmp_path / 'verify-tmp'
    verify_tmp.mkdir()
    out = ansible_module('nexus.secrets.nexus_backup_info', {
        'path': str(listing), 'backup_password': BACKUP_PASSWORD, 'key_password': KEYRING_PASSWORD,
        'verify': True, 'tmp_dir': str(verify_tmp)})
    out.pop('_run')
    assert out.get('failed') is not True, out
    no_traceback(out)
    by_name = {entry['name']: entry for entry in out['backups']}
    assert set(by_name) == set(world['reasons']) | {FIXTURE_NAME, SERVER_NAME}
    for name, reason in world['reasons'].items():
        assert by_name[name]['valid'] is False and reason in by_name[name]['error'], (name, by_name[name])
    assert by_name[FIXTURE_NAME]['valid'] is True and by_name[FIXTURE_NAME]['secrets'] == 12
    assert by_name[SERVER_NAME]['valid'] is True and by_name[SERVER_NAME]['secrets'] == 5
    assert by_name[SERVER_NAME]['keyring_verified'] is True
    assert out['latest']['name'] == SERVER_NAME  # the newest valid one; every newer file is hostile
    assert os.listdir(str(verify_tmp)) == []


@pytest.mark.slow
def test_restore_refuses_every_hostile_backup_and_changes_nothing(world, ansible_playbook, tmp_path):
    root, data = world['root'], world['data']
    before, data_before = snapshot(root), snapshot(data)
    playbook = tmp_path / 'restore.yml'
    playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'under test', 'nexus.secrets.nexus_restore': {
            'src': '{{ item }}', 'backup_password': '{{ password }}', 'key_password': '{{ key_password }}',
            'data_dir': str(data), 'health_url': 'http://127.0.0.1:%d/health' % free_port()},
         'loop': '{{ cases }}', 'ignore_errors': True}]}]))
    names = sorted(world['reasons'])
    res = ansible_playbook(playbook, extra_vars={
        'cases': [str(world['backups'] / name) for name in names], 'password': BACKUP_PASSWORD,
        'key_password': KEYRING_PASSWORD})
    results = res.task('under test')['results']
    assert len(results) == len(names)
    for name, result in zip(names, results):
        assert result.get('failed') is True and result.get('changed') is False, (name, result)
        assert world['reasons'][name] in result['msg'] and 'nothing was changed' in result['msg'], \
            (name, result['msg'])
        no_traceback(result)
    assert snapshot(data) == data_before
    after = snapshot(root)
    # Beside the data dir only the restore's own private lock dir may appear (made on first use).
    assert {k: v for k, v in after.items() if not k.startswith(STATE_DIR)} == before
    assert all(after[k][1] & 0o077 == 0 for k in after if k.startswith(STATE_DIR))
    assert leftovers(data, root) == []


def test_backup_refuses_a_live_database_with_a_recursive_secrets_view(ansible_module, tmp_path):
    data = hostile_db_dir(tmp_path / 'data', 'recursive-view-named-secrets')
    dest = tmp_path / 'dest'
    for dummy in range(2):  # the destination lock is released: the second run meets the same refusal
        out = ansible_module('nexus.secrets.nexus_backup', {
            'data_dir': str(data), 'dest': str(dest), 'backup_password': BACKUP_PASSWORD})
        out.pop('_run')
        assert out.get('failed') is True and out['changed'] is False, out
        assert "is not a NEXUS database: it holds the view 'secrets'" in out['msg'], out['msg']
        no_traceback(out)
    assert os.listdir(str(dest)) == []
