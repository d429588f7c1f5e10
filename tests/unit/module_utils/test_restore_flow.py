"""``_restore.restore()`` end to end on real files: validation first, swap, idempotence, refusals.

Every refusal must leave the data dir exactly as it was (same files, modes, inodes, contents) and
no staging directory behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _restore, _swap
from tests.helpers.disk_full import fill_disk_after
from tests.integration.restore import backups as b

PASSWORD = 'unit-backup-password'
KEY_PASSWORD = 'unit-key-password'


@pytest.fixture
def world(tmp_path):
    """A live data dir (old state, with a WAL) and a backup of another state."""
    source = b.make_data_dir(tmp_path / 'source', live=5, key_password=KEY_PASSWORD, prefix='new')
    backup = b.make_backup(tmp_path / 'nexus-backup-2025-12-04-001500.tar.gz.enc', PASSWORD, source)
    live = b.make_data_dir(tmp_path / 'nexus', live=2, key_password='old-key-password', prefix='old')
    (live / 'nexus.db-wal').write_bytes(b'stale wal frames')
    (live / 'nexus.db-shm').write_bytes(b'stale shm')
    (live / 'data' / 'keys' / 'extra.key').write_text('not in the backup')
    return {'tmp': tmp_path, 'source': source, 'backup': str(backup), 'live': live,
            'layout': _layout.Layout(str(live))}


def live_paths(db):
    conn = sqlite3.connect('file:%s?mode=ro&immutable=1' % db, uri=True)
    try:
        return sorted(r[0] for r in conn.execute('SELECT path FROM secrets WHERE deleted_at IS NULL'))
    finally:
        conn.close()


def assert_refused(world, match, **kwargs):
    before = b.snapshot(world['live'])
    with pytest.raises(_restore.RestoreFailed, match=match) as info:
        _restore.restore(kwargs.pop('src', world['backup']), kwargs.pop('password', PASSWORD), world['layout'],
                         **kwargs)
    assert b.snapshot(world['live']) == before
    assert b.leftovers(world['live'], world['tmp']) == []
    return str(info.value)


def test_restore_swaps_in_backup_and_keeps_previous_state(world):
    result = _restore.restore(world['backup'], PASSWORD, world['layout'], key_password=KEY_PASSWORD)
    live = world['live']
    assert result['changed'] and result['secrets'] == 5 and result['keyring_verified']
    assert live_paths(live / 'nexus.db') == ['new/secret-%03d' % i for i in range(5)]
    assert sorted(result['removed']) == ['nexus.db-shm', 'nexus.db-wal']
    assert not (live / 'nexus.db-wal').exists() and not (live / 'nexus.db-shm').exists()
    assert sorted(os.listdir(live / 'data' / 'keys')) == list(b.KEY_FILES)
    for name in b.KEY_FILES:
        assert (live / 'data' / 'keys' / name).read_bytes() == (world['source'] / 'data' / 'keys' / name).read_bytes()
    assert stat.S_IMODE(os.stat(live / 'nexus.db').st_mode) == 0o600
    assert stat.S_IMODE(os.stat(live / 'data' / 'keys').st_mode) == 0o700
    pre = result['pre_restore_path']
    assert os.path.dirname(pre) == str(live) and os.path.basename(pre).startswith('pre-restore-')
    assert (open(os.path.join(pre, 'nexus.db-wal'), 'rb').read()) == b'stale wal frames'
    assert 'extra.key' in os.listdir(os.path.join(pre, 'data', 'keys'))
    assert live_paths(os.path.join(pre, 'nexus.db')) == ['old/secret-%03d' % i for i in range(2)]
    assert b.leftovers(live) == [] and not os.path.exists(world['layout'].journal_path)


def test_second_run_is_a_no_op(world):
    _restore.restore(world['backup'], PASSWORD, world['layout'])
    before = b.snapshot(world['live'])
    again = _restore.restore(world['backup'], PASSWORD, world['layout'])
    assert again['changed'] is False and again['pre_restore_path'] is None and again['removed'] == []
    assert b.snapshot(world['live']) == before


def test_stale_wal_alone_makes_it_change(world):
    _restore.restore(world['backup'], PASSWORD, world['layout'], keep_pre_restore=False)
    (world['live'] / 'nexus.db-wal').write_bytes(b'frames from a killed server')
    result = _restore.restore(world['backup'], PASSWORD, world['layout'], keep_pre_restore=False)
    assert result['changed'] and result['removed'] == ['nexus.db-wal']
    assert not (world['live'] / 'nexus.db-wal').exists()
    assert [n for n in os.listdir(world['live']) if n.startswith('pre-restore')] == []


def test_check_mode_validates_but_changes_nothing(world):
    before = b.snapshot(world['live'])
    result = _restore.restore(world['backup'], PASSWORD, world['layout'], check_mode=True, want_diff=True,
                              key_password=KEY_PASSWORD)
    assert result['changed'] and result['keyring_verified'] and result['secrets'] == 5
    assert sorted(result['removed']) == ['nexus.db-shm', 'nexus.db-wal']
    assert b.snapshot(world['live']) == before
    assert b.leftovers(world['live']) == []
    diff = result['diff']
    assert 'nexus.db-wal size=16 sha256=' in diff['before']
    assert 'data/keys/extra.key' in diff['before'] and 'data/keys/extra.key' not in diff['after']
    assert 'stale wal frames' not in diff['before']


def test_check_mode_still_refuses_a_bad_backup(world):
    assert_refused(world, 'cannot decrypt', password='wrong', check_mode=True)


def test_missing_data_dir_is_created_private(world):
    layout = _layout.Layout(str(world['tmp'] / 'fresh' / 'nexus'))
    os.mkdir(str(world['tmp'] / 'fresh'))
    result = _restore.restore(world['backup'], PASSWORD, layout)
    assert result['changed'] and result['pre_restore_path'] is None
    assert stat.S_IMODE(os.stat(layout.data_dir).st_mode) == 0o700
    assert sorted(os.listdir(layout.data_dir)) == ['data', 'nexus.db']
    assert b.leftovers(world['tmp'] / 'fresh') == []


def test_check_mode_on_missing_data_dir_creates_nothing(world):
    os.mkdir(str(world['tmp'] / 'fresh'))
    layout = _layout.Layout(str(world['tmp'] / 'fresh' / 'nexus'))
    assert _restore.restore(world['backup'], PASSWORD, layout, check_mode=True)['changed']
    assert os.listdir(str(world['tmp'] / 'fresh')) == []


def test_missing_parent_of_data_dir_is_refused(world):
    layout = _layout.Layout(str(world['tmp'] / 'no' / 'such' / 'nexus'))
    with pytest.raises(_restore.RestoreFailed, match='nor does its parent'):
        _restore.restore(world['backup'], PASSWORD, layout)
    assert not os.path.exists(str(world['tmp'] / 'no'))


def test_wrong_backup_password(world):
    assert 'wrong backup password' in assert_refused(world, 'cannot decrypt', password='not-the-password')


@pytest.mark.parametrize('cut', [0, 1, 27, 28, 43, -1, -17, -100])
def test_empty_tiny_and_truncated_files(world, cut):
    data = open(world['backup'], 'rb').read()
    bad = world['tmp'] / 'cut.enc'
    bad.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    assert_refused(world, 'too small|cannot decrypt|truncated', src=str(bad))


@pytest.mark.parametrize('where', ['salt', 'nonce', 'body', 'tag'])
def test_flipped_byte_anywhere(world, where):
    data = bytearray(open(world['backup'], 'rb').read())
    index = {'salt': 3, 'nonce': 20, 'body': len(data) // 2, 'tag': len(data) - 3}[where]
    data[index] ^= 0x01
    bad = world['tmp'] / 'flipped.enc'
    bad.write_bytes(bytes(data))
    assert_refused(world, 'cannot decrypt', src=str(bad))


@pytest.mark.parametrize('kind', sorted(b.HOSTILE_PAYLOADS))
def test_hostile_or_garbled_payload_with_valid_tag(world, kind):
    bad = b.seal(world['tmp'] / ('%s.enc' % kind), PASSWORD, b.HOSTILE_PAYLOADS[kind]())
    msg = assert_refused(world, 'archive is unusable|holds no nexus.db', src=str(bad))
    assert 'wrong backup password' not in msg
    assert not os.path.exists('/tmp/nexus-evil.db')


def test_backup_without_keyring_is_refused(world):
    bad = b.make_backup(world['tmp'] / 'nokeys.enc', PASSWORD, world['source'], with_keys=False)
    assert_refused(world, 'no complete keyring', src=str(bad))


def test_backup_without_tables_is_refused(world, tmp_path):
    empty = tmp_path / 'empty-src'
    b.make_keyring(empty / 'data' / 'keys', KEY_PASSWORD)
    sqlite3.connect(str(empty / 'nexus.db')).close()
    (empty / 'nexus.db').write_bytes(b'')
    bad = b.make_backup(tmp_path / 'notables.enc', PASSWORD, empty)
    assert_refused(world, 'no tables', src=str(bad))


def test_key_password_that_does_not_unlock_the_backup_keyring(world):
    msg = assert_refused(world, 'key_password does not unlock', key_password='old-key-password')
    assert 'nothing was changed' in msg


def test_source_missing_or_a_directory(world):
    assert_refused(world, 'cannot read the backup', src=str(world['tmp'] / 'nope.enc'))
    fifo = world['tmp'] / 'backup.fifo'
    os.mkfifo(str(fifo))
    assert_refused(world, 'not a regular file', src=str(fifo))
    assert_refused(world, 'holds no nexus.db', src=str(world['tmp'] / 'source' / 'data'))


def test_owner_and_group_apply_to_restored_files(world):
    _restore.restore(world['backup'], PASSWORD, world['layout'], owner_ids=(65534, 65534))
    for path in [world['live'] / 'nexus.db', world['live'] / 'data' / 'keys'] + \
            [world['live'] / 'data' / 'keys' / n for n in b.KEY_FILES]:
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (65534, 65534), path
    # Same content but another owner wanted: not in place, so it changes.
    assert _restore.restore(world['backup'], PASSWORD, world['layout'])['changed'] is False
    assert _restore.restore(world['backup'], PASSWORD, world['layout'], owner_ids=(0, 0))['changed'] is True


def test_unknown_owner_is_refused():
    with pytest.raises(_restore.RestoreFailed, match='does not exist'):
        _restore.resolve_owner('no-such-user-nexus-test', None)
    with pytest.raises(_restore.RestoreFailed, match='does not exist'):
        _restore.resolve_owner(None, 'no-such-group-nexus-test')


@pytest.mark.parametrize('label', ['save nexus.db', 'save data/keys', 'install nexus.db', 'install data/keys',
                                   'journal committed'])
def test_failure_during_swap_restores_previous_state(world, label, monkeypatch):
    def fault(name):
        if name == label:
            raise OSError(5, 'Input/output error (injected)')

    monkeypatch.setattr(_swap, 'checkpoint', fault)
    msg = assert_refused(world, 'previous state was put back', key_password=KEY_PASSWORD)
    assert 'injected' in msg
    assert not os.path.exists(world['layout'].journal_path)


def _restore_and_die_at(world, step):
    """Run a restore in a child that dies (like SIGKILL: no clean-up) at swap step ``step``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child dies half-way through the swap
        def die(name):
            if name == step:
                os._exit(86)
        _swap.checkpoint = die
        try:
            _restore.restore(world['backup'], PASSWORD, world['layout'])
        finally:
            os._exit(1)
    assert os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 86


def test_interrupted_restore_is_undone_then_redone_on_next_run(world):
    labels = []
    _restore_and_die_at(world, 'install data/keys')
    assert os.path.exists(world['layout'].journal_path)
    # Half-swapped: new nexus.db with no keyring at all. The next run puts things right first.
    assert not (world['live'] / 'data' / 'keys').exists()
    result = _restore.restore(world['backup'], PASSWORD, world['layout'])
    labels.append(result['recovered'])
    assert labels == ['rolled_back'] and result['changed']
    assert live_paths(world['live'] / 'nexus.db') == ['new/secret-%03d' % i for i in range(5)]
    pre_restores = [n for n in os.listdir(world['live']) if n.startswith('pre-restore')]
    assert len(pre_restores) == 1  # the rolled-back attempt left none of its own
    assert b.leftovers(world['live']) == []


def test_leftover_staging_of_a_crashed_run_is_removed(world):
    stale = world['live'] / '.nexus-restore-deadbeef'
    (stale / 'tree').mkdir(parents=True)
    (stale / 'tree' / 'nexus.db').write_bytes(b'half-decrypted')
    (world['live'] / '..nexus-restore.journal.x1y2.tmp').write_bytes(b'{"half')
    (world['tmp'] / '.nexus-restore-fresh1').mkdir()  # a crashed restore onto a then-missing data dir
    # The crashed runs had named their staging dirs in the state dir before making them.
    os.close(_swap.open_state_dir(world['layout']))
    _swap.record_staging(world['layout'], [str(stale), str(world['tmp'] / '.nexus-restore-fresh1')])
    _restore.restore(world['backup'], PASSWORD, world['layout'])
    assert b.leftovers(world['live'], world['tmp']) == []
    assert _swap.recorded_staging(world['layout']) == []


def test_a_directory_that_only_looks_like_staging_is_left_alone(world):
    """Leftovers are what the state dir recorded, not what a name in the data dir suggests."""
    lookalike = world['live'] / '.nexus-restore-notours'
    (lookalike / 'data').mkdir(parents=True)
    (lookalike / 'data' / 'keep').write_bytes(b'not a staging dir')
    _restore.restore(world['backup'], PASSWORD, world['layout'])
    assert (lookalike / 'data' / 'keep').read_bytes() == b'not a staging dir'


@pytest.fixture
def public_dir():
    """A directory every user can traverse (pytest's tmp dirs are private to root)."""
    path = tempfile.mkdtemp(prefix='nexus-restore-perm-')
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path)


def test_no_write_permission_is_refused_cleanly(public_dir):
    """As an unprivileged user (root ignores modes): a data dir it cannot write is refused, unchanged."""
    base = public_dir
    source = b.make_data_dir(base / 'source', live=1, key_password=KEY_PASSWORD)
    backup = b.make_backup(base / 'backup.enc', PASSWORD, source)
    live = b.make_data_dir(base / 'nexus', live=1)
    os.chmod(str(backup), 0o644)
    for path in (base, live, live / 'nexus.db'):
        os.chmod(str(path), 0o755 if path.is_dir() else 0o644)
    before = b.snapshot(live)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: drop privileges, try, report
        os.close(read_end)
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            _restore.restore(str(backup), PASSWORD, _layout.Layout(str(live)))
        except _restore.RestoreFailed as exc:
            os.write(write_end, str(exc).encode())
            code = 3
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, 'rb') as fh:
        msg = fh.read().decode()
    assert os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 3, msg
    assert 'Permission denied' in msg and 'nothing was changed' in msg
    assert b.snapshot(live) == before


def test_custom_db_path_and_keys_dir(world, tmp_path):
    """-db elsewhere and the keyring in the server's working dir: both swapped, the WAL beside -db too."""
    db_dir = tmp_path / 'nexus' / 'db'
    db_dir.mkdir()
    os.rename(str(world['live'] / 'nexus.db'), str(db_dir / 'main.db'))
    os.rename(str(world['live'] / 'nexus.db-wal'), str(db_dir / 'main.db-wal'))
    layout = _layout.Layout(str(world['live']), db_path=str(db_dir / 'main.db'),
                            keys_dir=str(world['live'] / 'data' / 'keys'))
    result = _restore.restore(world['backup'], PASSWORD, layout, key_password=KEY_PASSWORD)
    assert result['changed'] and 'nexus.db-wal' in result['removed']
    assert live_paths(db_dir / 'main.db') == ['new/secret-%03d' % i for i in range(5)]
    assert not (db_dir / 'main.db-wal').exists()
    pre = result['pre_restore_path']
    assert live_paths(os.path.join(pre, 'nexus.db')) == ['old/secret-%03d' % i for i in range(2)]
    assert _restore.restore(world['backup'], PASSWORD, layout)['changed'] is False


def test_one_restore_at_a_time(world):
    state_fd = _swap.open_state_dir(world['layout'])
    lock_fd = _swap.lock(world['layout'], state_fd)  # what a running restore holds
    try:
        assert_refused(world, 'another restore is running')
    finally:
        os.close(lock_fd)
        os.close(state_fd)
    # A lock anybody can take on the parent directory no longer stops a restore.
    fd = os.open(str(world['live'].parent), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _restore.restore(world['backup'], PASSWORD, world['layout'])['changed']
    finally:
        os.close(fd)


def test_check_mode_with_a_pending_journal_leaves_no_staging(world):
    """Check mode must not recover (that changes files) nor leak its own staging dir."""
    _restore_and_die_at(world, 'install nexus.db')
    before = b.snapshot(world['live'])
    result = _restore.restore(world['backup'], PASSWORD, world['layout'], check_mode=True)
    assert any('interrupted restore' in w for w in result['warnings'])
    assert b.snapshot(world['live']) == before
    assert _restore.restore(world['backup'], PASSWORD, world['layout'])['recovered'] == 'rolled_back'
    assert b.leftovers(world['live']) == []


def test_disk_full_while_staging_is_reported_as_such(world, monkeypatch):
    from ansible_collections.nexus.secrets.plugins.module_utils import _archive

    real = _archive._extract_file

    def full(*args):
        real(*args)
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_archive, '_extract_file', full)
    msg = assert_refused(world, 'cannot stage the backup')
    assert 'No space left on device' in msg and 'nothing was changed' in msg


def test_disk_full_in_the_writer_thread_while_staging(world, monkeypatch):
    """ENOSPC raised by the staged file's write, in the worker thread that writes it."""
    fill_disk_after(monkeypatch, 0)
    msg = assert_refused(world, 'cannot stage the backup')
    assert 'No space left on device' in msg and 'nothing was changed' in msg


def _commit_into_wal_and_die(db_path, count):
    """Like a kill -9'd server: rows committed to the WAL, never checkpointed."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        conn = sqlite3.connect(str(db_path), isolation_level=None)
        conn.execute('PRAGMA wal_autocheckpoint=0')
        for i in range(count):
            conn.execute("INSERT INTO secrets (id, path, value, created_at, created_by, updated_at, updated_by) "
                         "VALUES (?, ?, x'00', 'now', 'admin-001', 'now', 'admin-001')",
                         ('wal-%d' % i, 'old/wal-%d' % i))
        os._exit(0)
    assert os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 0


def test_roll_back_to_the_pre_restore_directory(world):
    live = world['live']
    (live / 'nexus.db-wal').unlink()
    (live / 'nexus.db-shm').unlink()
    _commit_into_wal_and_die(live / 'nexus.db', 3)
    assert (live / 'nexus.db-wal').stat().st_size > 0
    first = _restore.restore(world['backup'], PASSWORD, world['layout'])
    pre = first['pre_restore_path']
    pre_before = b.snapshot(pre)

    back = _restore.restore(pre, None, world['layout'], key_password='old-key-password')
    assert back['changed'] and back['keyring_verified'] and back['secrets'] == 5
    expected = ['old/secret-000', 'old/secret-001', 'old/wal-0', 'old/wal-1', 'old/wal-2']
    assert live_paths(live / 'nexus.db') == expected  # the WAL's rows are in the restored file
    assert not (live / 'nexus.db-wal').exists()
    assert sorted(os.listdir(live / 'data' / 'keys')) == sorted(list(b.KEY_FILES) + ['extra.key'])
    assert b.snapshot(pre) == pre_before  # the source stays a restorable state
    assert _restore.restore(pre, None, world['layout'])['changed'] is False
    # The rollback itself kept what it replaced (the restored backup).
    assert live_paths(os.path.join(back['pre_restore_path'], 'nexus.db')) == ['new/secret-%03d' % i
                                                                              for i in range(5)]


def test_directory_source_without_keyring_or_db_is_refused(world, tmp_path):
    empty = tmp_path / 'not-a-workdir'
    empty.mkdir()
    assert_refused(world, 'holds no nexus.db', src=str(empty))
    b.make_db(empty / 'nexus.db')
    assert_refused(world, 'no complete keyring', src=str(empty))
    b.make_keyring(empty / 'data' / 'keys', 'x')
    os.symlink('/etc/passwd', str(empty / 'data' / 'keys' / 'evil.key'))
    assert_refused(world, 'not a regular file', src=str(empty))
