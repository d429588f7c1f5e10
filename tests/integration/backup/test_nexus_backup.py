"""nexus.secrets.nexus_backup run for real (ansible-playbook) against live reference servers."""

import datetime
import grp
import os
import pwd
import sqlite3
import stat
import subprocess
import tempfile
import time

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._sqlite import count_live_secrets, integrity_check

from tests.helpers.ansible import run_module
from tests.integration.backup.independent_reader import read_backup

MODULE = 'nexus.secrets.nexus_backup'
PASSWORD = 'integration-backup-password'
KEY_NAMES = ['age.key', 'master.key', 'signing.key', 'verify.key']


def backup(args, **kwargs):
    return run_module(MODULE, args, **kwargs)


def fill(server, count, prefix='app/secret-'):
    client = server.client()
    for i in range(count):
        assert client.create('%s%03d' % (prefix, i), 'value-%d' % i).status_code == 201
    return client


def fake_backup(dest, when, with_sidecar=True):
    path = dest / when.strftime('nexus-backup-%Y-%m-%d-%H%M%S.tar.gz.enc')
    path.write_bytes(b'old backup')
    if with_sidecar:
        (dest / (path.name + '.sha256')).write_text('x  %s\n' % path.name)
    return path


def db_from_backup(path, tmp_path, password=PASSWORD):
    members = {m['name']: m for m in read_backup(path, password)}
    db = tmp_path / ('restored-%s.db' % os.path.basename(str(path)))
    db.write_bytes(members['nexus.db']['data'])
    return db


def test_backup_of_a_running_server(nexus_server, tmp_path):
    fill(nexus_server, 12)
    dest = tmp_path / 'backups' / 'nexus'
    began = time.monotonic()
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(dest), 'backup_password': PASSWORD})
    elapsed = time.monotonic() - began
    assert out['changed'] is True and not out.get('failed'), out
    path = out['path']
    assert os.path.dirname(path) == str(dest)
    assert os.path.basename(path).startswith('nexus-backup-') and path.endswith('.tar.gz.enc')
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path + '.sha256').st_mode) == 0o600
    assert out['size'] == os.path.getsize(path)
    assert out['secrets'] == 12
    assert [m['name'] for m in out['members']] == ['nexus.db', 'data/keys'] + ['data/keys/' + k for k in KEY_NAMES]
    assert out['members'][1] == {'name': 'data/keys', 'size': 0, 'type': 'dir', 'mode': '0700'}
    assert out['pruned'] == []
    # Seconds the module spent: more than nothing (a KDF alone takes a while), and within the whole run.
    assert isinstance(out['duration'], float) and 0 < out['duration'] <= elapsed + 1, (out['duration'], elapsed)
    assert PASSWORD not in out['_run'].stdout + out['_run'].stderr
    # The sidecar is what sha256sum writes and checks.
    check = subprocess.run(['sha256sum', '-c', os.path.basename(path) + '.sha256'], cwd=str(dest),
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0 and check.stdout.strip() == os.path.basename(path) + ': OK'
    assert open(path + '.sha256').read().split()[0] == out['sha256']
    assert sorted(os.listdir(str(dest))) == sorted([os.path.basename(path), os.path.basename(path) + '.sha256'])


def test_independent_reader_sees_nexusctl_layout(nexus_server, tmp_path):
    """Decrypted and listed by a reader written from docs/nexus-behaviour.md §5: names, types, modes as on disk."""
    fill(nexus_server, 5)
    os.chmod(str(nexus_server.db_path), 0o640)
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'b'), 'backup_password': PASSWORD})
    assert out['changed'], out
    members = read_backup(out['path'], PASSWORD)
    assert [m['name'] for m in members] == ['nexus.db', 'data/keys'] + ['data/keys/' + k for k in KEY_NAMES]
    assert all(m['magic'] == b'ustar\x0000' for m in members)
    assert not any(m['name'].startswith('./') or m['name'].endswith('/') for m in members)
    assert [m['type'] for m in members] == ['file', 'dir'] + ['file'] * 4
    keys_dir = nexus_server.keys_dir
    expected_modes = [0o640, stat.S_IMODE(os.stat(str(keys_dir)).st_mode)] + \
        [stat.S_IMODE(os.stat(str(keys_dir / k)).st_mode) for k in KEY_NAMES]
    assert [m['mode'] for m in members] == expected_modes == [0o640, 0o700] + [0o600] * 4
    for m in members[2:]:
        assert m['data'] == (keys_dir / m['name'].split('/')[-1]).read_bytes()
    db = db_from_backup(out['path'], tmp_path)
    conn = sqlite3.connect(str(db))
    assert conn.execute('SELECT count(*) FROM secrets WHERE deleted_at IS NULL').fetchone()[0] == 5
    conn.close()


def test_backup_of_a_stopped_server(nexus_server, tmp_path):
    client = fill(nexus_server, 4)
    assert client.delete('app/secret-000').status_code == 204
    nexus_server.stop()
    before = sorted(os.listdir(str(nexus_server.workdir)))
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'b'), 'backup_password': PASSWORD,
                  'mode': '0640', 'name': 'manual.tar.gz.enc'})
    assert out['changed'], out
    assert out['path'] == str(tmp_path / 'b' / 'manual.tar.gz.enc')
    assert out['secrets'] == 3
    assert stat.S_IMODE(os.stat(out['path']).st_mode) == 0o640
    assert sorted(os.listdir(str(nexus_server.workdir))) == before  # no -wal/-shm left behind
    assert integrity_check(str(db_from_backup(out['path'], tmp_path))) is None


def test_password_from_environment_and_owner(nexus_server, tmp_path):
    fill(nexus_server, 1)
    # 'nobody' and its primary group, whatever the group is called here (nogroup on Debian, nobody elsewhere).
    nobody = pwd.getpwnam('nobody')
    group = grp.getgrgid(nobody.pw_gid)
    assert (nobody.pw_uid, group.gr_gid) != (os.geteuid(), os.getegid())
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'b'), 'owner': 'nobody',
                  'group': group.gr_name}, environment={'NEXUS_BACKUP_PASSWORD': 'from-the-env'})
    assert out['changed'], out
    assert read_backup(out['path'], 'from-the-env')[0]['name'] == 'nexus.db'
    for path in (out['path'], out['path'] + '.sha256'):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, group.gr_gid)
    assert 'from-the-env' not in out['_run'].stdout + out['_run'].stderr


def test_check_mode_writes_nothing(nexus_server, tmp_path):
    dest = tmp_path / 'b'
    dest.mkdir()
    old = [fake_backup(dest, datetime.datetime(2024, 1, d, 3)) for d in (1, 2, 3)]
    before = sorted(os.listdir(str(dest)))
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(dest), 'backup_password': PASSWORD,
                  'keep_last': 2}, check=True)
    assert out['changed'] is True and not out.get('failed'), out
    assert os.path.dirname(out['path']) == str(dest) and not os.path.exists(out['path'])
    assert out['pruned'] == [str(old[1]), str(old[0])]  # the new one and the newest old one are kept
    assert sorted(os.listdir(str(dest))) == before
    missing_dest = tmp_path / 'not-yet'
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(missing_dest), 'backup_password': PASSWORD},
                 check=True)
    assert out['changed'] and out['pruned'] == [] and not missing_dest.exists()


def test_retention_after_success(nexus_server, tmp_path):
    dest = tmp_path / 'b'
    dest.mkdir()
    now = datetime.datetime.now()
    daily = [fake_backup(dest, now - datetime.timedelta(days=d, hours=1)) for d in range(1, 6)]
    stray = dest / 'nexus-backup-notes.txt'
    stray.write_text('not a backup')
    foreign = dest / 'other-2020-01-01.tar.gz.enc'
    foreign.write_text('not ours')
    orphan_sidecar_owner = fake_backup(dest, now - datetime.timedelta(days=40), with_sidecar=False)
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(dest), 'backup_password': PASSWORD,
                  'keep_last': 2, 'keep_days': 3})
    assert out['changed'], out
    # keep_last 2: the new one and daily[0]; keep_days 3: daily[0], daily[1] (1 and 2 days old).
    assert sorted(out['pruned']) == sorted([str(daily[2]), str(daily[3]), str(daily[4]), str(orphan_sidecar_owner)])
    left = sorted(os.listdir(str(dest)))
    name = os.path.basename(out['path'])
    assert left == sorted([name, name + '.sha256', daily[0].name, daily[0].name + '.sha256', daily[1].name,
                           daily[1].name + '.sha256', stray.name, foreign.name])


def test_retention_never_prunes_the_new_backup(nexus_server, tmp_path):
    dest = tmp_path / 'b'
    dest.mkdir()
    future = fake_backup(dest, datetime.datetime.now() + datetime.timedelta(days=3650))
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(dest), 'backup_password': PASSWORD,
                  'keep_last': 1})
    assert out['changed'], out
    assert out['pruned'] == [] and os.path.exists(out['path']) and future.exists()


@pytest.mark.parametrize('args,message', [
    ({'data_dir': '{tmp}/missing'}, 'database {tmp}/missing/nexus.db does not exist'),
    ({'keys_dir': '{tmp}/no-keys'}, 'keyring directory {tmp}/no-keys does not exist'),
    ({'db_path': '{tmp}'}, 'is not a regular file'),
    ({'dest': '{tmp}/a-file'}, 'exists and is not a directory'),
    ({'dest': '{tmp}/a-file/sub'}, 'cannot create dest directory'),
    ({'mode': 'rw-r'}, 'mode must be an octal number'),
    ({'mode': '0o77777'}, 'mode must be'),
    ({'keep_last': 'three'}, 'keep_last'),
    ({'keep_daily': -1}, 'keep_daily must not be negative'),
    ({'name': '../escape.tar.gz.enc'}, 'plain file name'),
    ({'name': '.hidden'}, 'must not start with'),
    ({'name': 'x.sha256'}, 'sidecar'),
    ({'backup_password': ''}, 'backup_password must not be empty'),
    ({'backup_password': None}, 'missing required arguments: backup_password'),
    ({'unknown_option': 1}, 'Unsupported parameters'),
    ({'compression': 'gzip'}, 'value of compression must be one of: deflate, store'),
    ({'owner': 'no-such-user-nexus'}, "owner 'no-such-user-nexus' does not exist"),
    ({'group': 'no-such-group-nexus'}, "group 'no-such-group-nexus' does not exist"),
])
def test_bad_input_changes_nothing(nexus_server, tmp_path, args, message):
    (tmp_path / 'a-file').write_text('x')
    base = {'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'dest'), 'backup_password': PASSWORD}
    for key, value in args.items():
        base[key] = value.format(tmp=tmp_path) if isinstance(value, str) else value
    base = {k: v for k, v in base.items() if v is not None}
    data_before = sorted(os.listdir(str(nexus_server.workdir)))
    out = backup(base)
    assert out.get('failed') is True and out['changed'] is False, out
    assert message.format(tmp=tmp_path) in out['msg'], out['msg']
    assert not (tmp_path / 'dest').exists()
    assert (tmp_path / 'a-file').read_text() == 'x'
    assert sorted(os.listdir(str(nexus_server.workdir))) == data_before
    assert PASSWORD not in out['_run'].stdout + out['_run'].stderr


def unwritable_dir(tmp_path):
    """A directory this process cannot create files in: 0500 for a normal user; sysfs for root."""
    if os.geteuid() != 0:
        path = tmp_path / 'ro'
        path.mkdir(mode=0o500)
        return str(path)
    try:
        tempfile.mkdtemp(dir='/sys/kernel')
    except OSError:
        return '/sys/kernel'
    pytest.skip('no directory here is read-only for root')


def test_unwritable_dest(nexus_server, tmp_path):
    dest = unwritable_dir(tmp_path)
    before = sorted(os.listdir(dest))
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': dest, 'backup_password': PASSWORD})
    assert out.get('failed') and out['changed'] is False, out
    assert 'cannot write to dest %s' % dest in out['msg'], out['msg']
    assert sorted(os.listdir(dest)) == before


def test_database_that_is_not_nexus(tmp_path):
    data_dir = tmp_path / 'data'
    (data_dir / 'data' / 'keys').mkdir(parents=True)
    conn = sqlite3.connect(str(data_dir / 'nexus.db'))
    conn.execute('CREATE TABLE t (x)')
    conn.commit()
    conn.close()
    out = backup({'data_dir': str(data_dir), 'dest': str(tmp_path / 'dest'), 'backup_password': PASSWORD})
    assert out.get('failed') and 'not a NEXUS database' in out['msg']
    assert os.listdir(str(tmp_path / 'dest')) == []  # dest created 0700 as nexusctl does; nothing in it


def test_backup_counts_match_a_direct_read(nexus_server, tmp_path):
    client = fill(nexus_server, 8)
    for i in range(3):
        assert client.delete('app/secret-%03d' % i).status_code == 204
    out = backup({'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'b'), 'backup_password': PASSWORD})
    assert out['secrets'] == 5 == count_live_secrets(str(db_from_backup(out['path'], tmp_path)))


def test_stored_backup_holds_the_same_archive(nexus_server, tmp_path):
    """compression: store - a larger file holding the very same members, which readers and nexus_restore take."""
    fill(nexus_server, 6)
    nexus_server.stop()
    args = {'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'b'), 'backup_password': PASSWORD}
    deflated = backup(dict(args, name='deflated.tar.gz.enc'))
    stored = backup(dict(args, name='stored.tar.gz.enc', compression='store'))
    assert deflated['changed'] and stored['changed'], (deflated, stored)
    # A test server's database is mostly empty pages: deflate shrinks it, storing cannot.
    assert stored['size'] > os.path.getsize(str(nexus_server.db_path)) > deflated['size']
    same = [[(m['name'], m['type'], m['mode'], m['data']) for m in read_backup(out['path'], PASSWORD)]
            for out in (deflated, stored)]
    assert same[0] == same[1]
    restored = run_module('nexus.secrets.nexus_restore', {
        'src': stored['path'], 'backup_password': PASSWORD, 'data_dir': str(tmp_path / 'restored'),
        'key_password': nexus_server.key_password or 'changeme-in-production', 'force': True})
    assert restored.get('failed') is not True, restored.get('msg')
    assert restored['changed'] and restored['secrets'] == 6
