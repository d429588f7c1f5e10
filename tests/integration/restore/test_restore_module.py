"""nexus.secrets.nexus_restore through real ansible-playbook runs and real reference servers."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.integration.restore import backups as b
from tests.nexus_server.harness import refused_port
from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, KEYRING_PASSWORD, fixture_path

MODULE = 'nexus.secrets.nexus_restore'
EXPECTED = json.load(open(fixture_path('expected-secrets.json')))


def stopped_health_url():
    """A loopback URL nobody listens on: connection refused, i.e. 'server stopped'."""
    return 'http://127.0.0.1:%d/health' % refused_port()


def restore_args(data_dir, **extra):
    args = {'src': fixture_path('nexusctl-backup.tar.gz.enc'), 'backup_password': BACKUP_PASSWORD,
            'data_dir': str(data_dir), 'key_password': KEYRING_PASSWORD, 'health_url': stopped_health_url()}
    args.update(extra)
    return args


def served_secrets(server):
    client = server.client()
    listing = client.list().json()
    values = {}
    for item in listing['secrets']:
        resp = client.get(item['path'])
        assert resp.status_code == 200, (item['path'], resp.text)
        values[item['path']] = resp.json()['value']
    return listing['total'], values


def assert_serves_exactly_the_fixture(server):
    total, values = served_secrets(server)
    assert total == len(EXPECTED['live_secrets']) == 12
    assert values == {s['path']: s['value'] for s in EXPECTED['live_secrets']}
    client = server.client()
    for path in EXPECTED['soft_deleted_paths']:
        assert client.get(path).status_code == 404


def test_restore_nexusctl_backup_then_server_serves_its_secrets(ansible_module, nexus_server_factory, tmp_path):
    data_dir = tmp_path / 'nexus'
    out = ansible_module(MODULE, restore_args(data_dir))
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] and out['secrets'] == 12 and out['keyring_verified'] is True
    assert out['pre_restore_path'] is None and out['removed'] == []
    assert {m['name'] for m in out['members']} == {'nexus.db', 'data/keys'} | {'data/keys/' + k for k in b.KEY_FILES}
    assert oct(os.stat(data_dir).st_mode & 0o777) == '0o700'
    # Idempotent (before a server touches the database).
    again = ansible_module(MODULE, restore_args(data_dir))
    assert again['changed'] is False and again['pre_restore_path'] is None
    server = nexus_server_factory(workdir=data_dir, key_password=KEYRING_PASSWORD)
    assert_serves_exactly_the_fixture(server)
    assert 'No existing keyring found' not in server.log_text()


@pytest.mark.slow  # three restores and four server starts: about 30 s
def test_stale_wal_of_a_killed_server_is_removed(ansible_module, nexus_server_factory, tmp_path):
    data_dir = tmp_path / 'nexus'
    assert ansible_module(MODULE, restore_args(data_dir))['changed']
    server = nexus_server_factory(workdir=data_dir, key_password=KEYRING_PASSWORD)
    client = server.client()
    for i in range(3):
        assert client.create('after-backup/secret-%d' % i, 'v%d' % i).status_code == 201
    server.kill()  # kill -9: the new rows live only in nexus.db-wal
    assert (data_dir / 'nexus.db-wal').stat().st_size > 0

    # What nexusctl does (overwrite nexus.db in place, keep the WAL) shows the bug the module fixes.
    nexusctl_like = tmp_path / 'nexusctl-like'
    shutil.copytree(str(data_dir), str(nexusctl_like))
    staged = tmp_path / 'staged'
    out = ansible_module(MODULE, restore_args(staged))
    assert out['changed']
    shutil.copyfile(str(staged / 'nexus.db'), str(nexusctl_like / 'nexus.db'))
    buggy = nexus_server_factory(workdir=nexusctl_like, key_password=KEYRING_PASSWORD)
    assert buggy.client().list().json()['total'] != 12
    buggy.stop()

    out = ansible_module(MODULE, restore_args(data_dir))
    assert out['changed'] and sorted(out['removed']) == ['nexus.db-shm', 'nexus.db-wal']
    assert not (data_dir / 'nexus.db-wal').exists() and not (data_dir / 'nexus.db-shm').exists()
    pre = out['pre_restore_path']
    assert os.path.getsize(os.path.join(pre, 'nexus.db-wal')) > 0  # nothing committed was thrown away
    server.start()
    assert_serves_exactly_the_fixture(server)
    server.stop()
    # The pre-restore copy is a NEXUS working dir: it serves the 15 secrets of before the restore.
    previous = nexus_server_factory(workdir=pre, key_password=KEYRING_PASSWORD)
    total, values = served_secrets(previous)
    assert total == 15 and values['after-backup/secret-2'] == 'v2'


def test_refuses_while_the_server_runs_and_force_overrides(ansible_module, nexus_server_factory, tmp_path):
    running = nexus_server_factory(workdir=tmp_path / 'running', key_password=KEYRING_PASSWORD)
    before = b.snapshot(running.workdir)
    out = ansible_module(MODULE, restore_args(running.workdir, health_url=running.url + '/health'))
    assert out['failed'] and 'may be running' in out['msg'] and 'HTTP 200' in out['msg']
    assert b.snapshot(running.workdir) == before
    other = tmp_path / 'other'
    forced = ansible_module(MODULE, restore_args(other, health_url=running.url + '/health', force=True))
    assert forced.get('failed') is not True, forced.get('msg')
    assert forced['changed'] and (other / 'nexus.db').exists()


def test_unhealthy_answer_still_counts_as_running(ansible_module, tmp_path):
    """A 404 (or 503) is an HTTP answer: some server is there."""
    import http.server
    import threading

    httpd = http.server.HTTPServer(('127.0.0.1', 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        out = ansible_module(MODULE, restore_args(tmp_path / 'nexus',
                                                  health_url='http://127.0.0.1:%d/health' % httpd.server_port))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert out['failed'] and 'HTTP 501' in out['msg']
    assert not (tmp_path / 'nexus').exists()


def test_key_password_mismatch_touches_nothing(ansible_module, tmp_path):
    live = b.make_data_dir(tmp_path / 'nexus')
    before = b.snapshot(live)
    out = ansible_module(MODULE, restore_args(live, key_password='not-the-keyring-password'))
    assert out['failed'] and 'key_password does not unlock' in out['msg']
    assert b.snapshot(live) == before and b.leftovers(live) == []


def test_check_and_diff_modes_change_nothing(ansible_module, tmp_path):
    live = b.make_data_dir(tmp_path / 'nexus')
    (live / 'nexus.db-wal').write_bytes(b'stale')
    before = b.snapshot(live)
    out = ansible_module(MODULE, restore_args(live), check=True, diff=True)
    assert out['changed'] and out['secrets'] == 12 and out['removed'] == ['nexus.db-wal']
    assert b.snapshot(live) == before and b.leftovers(live) == []
    diff = out['diff']
    assert 'nexus.db-wal size=5 sha256=' in diff['before']
    assert 'data/keys/master.key size=152 sha256=' in diff['after']
    assert 'stale' not in diff['before'].replace('nexus.db-wal', '')


def test_passwords_from_the_environment(ansible_module, tmp_path):
    args = restore_args(tmp_path / 'nexus')
    del args['backup_password'], args['key_password']
    out = ansible_module(MODULE, args, environment={'NEXUS_BACKUP_PASSWORD': BACKUP_PASSWORD,
                                                    'NEXUS_KEY_PASSWORD': KEYRING_PASSWORD})
    assert out['changed'] and out['keyring_verified'] is True
    run = out['_run']
    assert BACKUP_PASSWORD not in run.stdout + run.stderr
    assert KEYRING_PASSWORD not in run.stdout + run.stderr


def test_passwords_never_in_output_even_verbose(ansible_module, tmp_path):
    out = ansible_module(MODULE, restore_args(tmp_path / 'nexus'), verbosity=3)
    assert out['changed']
    run = out['_run']
    assert BACKUP_PASSWORD not in run.stdout + run.stderr
    assert KEYRING_PASSWORD not in run.stdout + run.stderr


def _bad(tmp_path, kind):
    data = open(fixture_path('nexusctl-backup.tar.gz.enc'), 'rb').read()
    path = tmp_path / ('bad-%s.enc' % kind)
    if kind == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'flipped':
        flipped = bytearray(data)
        flipped[len(data) // 3] ^= 0x80
        path.write_bytes(bytes(flipped))
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'tiny':
        path.write_bytes(data[:30])
    else:
        b.seal(path, BACKUP_PASSWORD, b.HOSTILE_PAYLOADS[kind]())
    return str(path)


@pytest.mark.parametrize('kind, expected', [
    ('wrong-password', 'wrong backup password'),
    ('truncated', 'cannot decrypt'),
    ('flipped', 'wrong backup password or the file is corrupt'),
    ('empty', 'too small'),
    ('tiny', 'too small'),
    ('not-gzip', 'archive is unusable'),
    ('gzip-not-tar', 'archive is unusable'),
    ('traversal', 'contains ".."'),
    ('symlink', 'symbolic link'),
])
def test_bad_input_gets_a_clear_message_and_changes_nothing(ansible_module, tmp_path, kind, expected):
    live = b.make_data_dir(tmp_path / 'nexus')
    before = b.snapshot(live)
    args = restore_args(live)
    if kind == 'wrong-password':
        args['backup_password'] = 'not-the-backup-password'
    else:
        args['src'] = _bad(tmp_path, kind)
    out = ansible_module(MODULE, args)
    assert out['failed'] and expected in out['msg'], out['msg']
    assert 'nothing was changed' in out['msg']
    assert b.snapshot(live) == before and b.leftovers(live) == []


def test_missing_parent_of_data_dir_is_an_error(ansible_module, tmp_path):
    out = ansible_module(MODULE, restore_args(tmp_path / 'missing' / 'nexus'))
    assert out['failed'] and 'nor does its parent' in out['msg']
    assert not (tmp_path / 'missing').exists()


def test_missing_backup_password_is_a_clear_error(ansible_module, tmp_path):
    args = restore_args(tmp_path / 'nexus')
    del args['backup_password']
    out = ansible_module(MODULE, args)
    assert out['failed'] and 'backup_password is required' in out['msg']


def test_roll_back_to_the_pre_restore_directory(ansible_module, nexus_server_factory, tmp_path):
    data_dir = tmp_path / 'nexus'
    old = nexus_server_factory(workdir=data_dir, key_password='old-keyring-password')
    client = old.client()
    for i in range(4):
        assert client.create('old/secret-%d' % i, 'old-value-%d' % i).status_code == 201
    old.kill()  # its last commits are only in the WAL
    restored = ansible_module(MODULE, restore_args(data_dir))
    assert restored['changed'] and restored['removed']
    back = ansible_module(MODULE, {'src': restored['pre_restore_path'], 'data_dir': str(data_dir),
                                   'key_password': 'old-keyring-password', 'health_url': stopped_health_url()})
    assert back.get('failed') is not True, back.get('msg')
    assert back['changed'] and back['secrets'] == 4 and back['keyring_verified'] is True
    old.start()
    total, values = served_secrets(old)
    assert total == 4 and values == {'old/secret-%d' % i: 'old-value-%d' % i for i in range(4)}
