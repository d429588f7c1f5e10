"""nexus_restore runs as root over a data dir the service account writes: what that account plants must not steer root.

Each attack runs as a real unprivileged uid (65534, through ``setpriv``) standing in for the NEXUS
service account: it forges a restore journal, flips a source file between a regular file and a
link, symlinks ``data_dir/data`` (or a live file) to root-only files, holds a lock anybody can take,
or points ``nexus.db-wal`` at a root-only secret before a diff. Root's files elsewhere must stay
exactly as they were (bytes, mode, owner) and the module must say clearly what it refused and where.
See docs/security.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _restore, _swap, _workdir_source
from tests.helpers.ansible import run_module
from tests.integration.restore import backups as b
from tests.security.attacker import (
    NOBODY, Arena, as_nobody, chown_tree, nobody_python, popen_as_nobody, require_root, snapshot,
)
from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, KEYRING_PASSWORD, fixture_path

MODULE = 'nexus.secrets.nexus_restore'
BACKUP = fixture_path('nexusctl-backup.tar.gz.enc')
WRITE_FILE = 'import sys; open(sys.argv[1], "w").write(sys.argv[2])'


@pytest.fixture
def arena():
    require_root()
    made = Arena()
    yield made
    made.cleanup()


def account_data_dir(parent, name='nexus'):
    """A NEXUS data dir owned by the service account (uid 65534), like /var/lib/nexus."""
    data = b.make_data_dir(os.path.join(str(parent), name), live=2, key_password='old-key-password')
    os.chmod(str(data), 0o750)
    chown_tree(data)
    return data


def module_args(data_dir, **extra):
    args = {'src': BACKUP, 'backup_password': BACKUP_PASSWORD, 'key_password': KEYRING_PASSWORD,
            'data_dir': str(data_dir), 'owner': str(NOBODY), 'group': str(NOBODY), 'force': True}
    args.update(extra)
    return args


def restore_core(data_dir, **kwargs):
    return _restore.restore(BACKUP, BACKUP_PASSWORD, _layout.Layout(str(data_dir)), key_password=KEYRING_PASSWORD,
                            owner_ids=(NOBODY, NOBODY), **kwargs)


def db_paths(db):
    conn = sqlite3.connect('file:%s?mode=ro&immutable=1' % db, uri=True)
    try:
        return sorted(r[0] for r in conn.execute('SELECT path FROM secrets'))
    finally:
        conn.close()


# --- 1. a forged restore journal -------------------------------------------------------------------

def forged_journal(arena, state):
    """What the review planted: a journal naming root-only places outside the data dir."""
    return {'format': 1, 'state': state, 'staging': str(arena.victim), 'pre_restore': str(arena.victim / 'keys'),
            'keep_pre_restore': False, 'created_dirs': [str(arena.victim)],
            'items': [{'name': 'nexus.db', 'live': str(arena.victim / 'shadow'), 'existed': True,
                       'saved': str(arena.base / 'stolen'), 'staged': None}]}


def test_forged_journal_in_the_data_dir_is_refused_by_the_module(arena):
    data = account_data_dir(arena.base)
    journal = data / _layout.LEGACY_RESTORE_JOURNAL_NAME
    nobody_python(WRITE_FILE, journal, json.dumps(forged_journal(arena, 'committed')))
    victim, before = arena.victim_state(), snapshot(data)
    out = run_module(MODULE, module_args(data))
    assert out.get('failed'), out
    assert str(journal) in out['msg'] and 'never trusts' in out['msg'] and 'nothing was changed' in out['msg']
    assert arena.victim_state() == victim
    assert snapshot(data) == before
    assert not (arena.base / 'stolen').exists()


def test_forged_swapping_journal_is_refused_and_nothing_is_renamed(arena):
    data = account_data_dir(arena.base)
    nobody_python(WRITE_FILE, data / _layout.LEGACY_RESTORE_JOURNAL_NAME, json.dumps(forged_journal(arena, 'swapping')))
    victim, before = arena.victim_state(), snapshot(data)
    with pytest.raises(_restore.RestoreFailed, match='never trusts'):
        restore_core(data)
    assert arena.victim_state() == victim and snapshot(data) == before


def test_the_account_cannot_write_where_the_journal_lives(arena):
    data = account_data_dir(arena.base)
    restore_core(data)  # creates the state dir beside the data dir
    layout = _layout.Layout(str(data))
    res = nobody_python(WRITE_FILE, layout.journal_path, '{}', check=False)
    assert res.returncode != 0 and 'Permission denied' in res.stderr
    st = os.lstat(layout.state_dir)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700


def test_state_dir_planted_by_the_account_in_a_shared_parent_is_refused(arena):
    """A sticky, world-writable parent (like /tmp): the account makes the state dir first, with a journal."""
    shared = arena.base / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    data = account_data_dir(shared)
    layout = _layout.Layout(str(data))
    stored = {'format': 2, 'state': 'committed', 'data_dir': layout.data_dir, 'db_path': layout.db_path,
              'keys_dir': layout.keys_dir, 'staging': '.nexus-restore-x', 'staging_in': 'data_dir',
              'pre_restore': 'pre-restore-2026-01-01-000000', 'keep_pre_restore': False, 'created_dirs': [],
              'existed': {}}
    as_nobody(['mkdir', '-m', '0700', layout.state_dir])
    nobody_python(WRITE_FILE, layout.journal_path, json.dumps(stored))
    victim, before = arena.victim_state(), snapshot(data)
    out = run_module(MODULE, module_args(data))
    assert out.get('failed'), out
    assert layout.state_dir in out['msg'] and 'not private' in out['msg'] and 'nothing was changed' in out['msg']
    assert arena.victim_state() == victim and snapshot(data) == before


@pytest.mark.parametrize('field, value', [
    ('staging', '../victim'),
    ('staging', '/etc'),
    ('pre_restore', '../../victim/keys'),
    ('pre_restore', 'keys'),
    ('created_dirs', ['/etc']),
    ('data_dir', '/somewhere/else'),
    ('staging_in', 'anywhere'),
    ('existed', {'nexus.db': True}),
    ('staging_id', '/etc'),
    ('pre_restore_id', [1, '2']),
    ('items', [{'live': '/etc/shadow'}]),
])
def test_a_private_journal_is_still_checked_name_by_name(tmp_path, field, value):
    """Even a journal only root could write names no path: anything off the fixed patterns is refused."""
    data = tmp_path / 'nexus'
    data.mkdir()
    outside = tmp_path / 'victim'
    outside.mkdir()
    (outside / 'keep').write_bytes(b'untouched')
    layout = _layout.Layout(str(data))
    stored = {'format': 2, 'state': 'committed', 'data_dir': layout.data_dir, 'db_path': layout.db_path,
              'keys_dir': layout.keys_dir, 'staging': '.nexus-restore-abc', 'staging_in': 'data_dir',
              'pre_restore': 'pre-restore-2026-01-01-000000', 'keep_pre_restore': False, 'created_dirs': [],
              'existed': dict((name, False) for name, _l, _s in layout.live_items()),
              'staging_id': [1, 2], 'pre_restore_id': None}
    stored[field] = value
    os.close(_swap.open_state_dir(layout))
    with os.fdopen(os.open(layout.journal_path, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as fh:
        json.dump(stored, fh)
    before = snapshot(tmp_path)
    with pytest.raises(_swap.SwapError, match='not one this collection wrote'):
        _swap.recover(layout)
    assert snapshot(tmp_path) == before


def test_a_root_owned_copy_renamed_to_a_staging_name_is_not_deleted(arena):
    """Leftover staging dirs are those the state dir recorded: a name in the account's dir decides nothing."""
    data = account_data_dir(arena.base)
    first = restore_core(data)
    pre = first['pre_restore_path']
    kept = snapshot(pre)
    assert kept['.'][2] == 0 and kept['.'][1] == 0o700  # root's private copy of the replaced state
    lookalike = data / '.nexus-restore-aaaaaaaa'
    as_nobody(['mv', '-T', pre, lookalike])
    restore_core(data, check_mode=False)
    assert snapshot(lookalike) == kept


# --- 2. a source file flipped between a regular file and a link ------------------------------------

FLIPPER = '''
import os, sys
os.chdir(sys.argv[1])
victim = sys.argv[2]
print('flipping', flush=True)
while True:  # link first: rename() between two names of one inode would do nothing
    os.symlink(victim, 'tmp-link')
    os.replace('tmp-link', 'nexus.db')
    os.link('good.db', 'tmp-file')
    os.replace('tmp-file', 'nexus.db')
'''


def test_working_dir_source_flipped_to_a_link_never_copies_a_root_file(arena):
    data = account_data_dir(arena.base)
    source = data / 'pre-restore-2026-01-01-000000'  # the DR rollback's source: inside the account's dir
    b.make_data_dir(source, live=3, key_password=KEYRING_PASSWORD, prefix='good')
    os.link(str(source / 'nexus.db'), str(source / 'good.db'))
    chown_tree(source)
    b.make_db(arena.victim / 'nexus.db', live=2, prefix='victim')
    os.chmod(str(arena.victim / 'nexus.db'), 0o600)
    victim = arena.victim_state()
    flipper = popen_as_nobody([sys.executable, '-c', FLIPPER, source, arena.victim / 'nexus.db'])
    try:
        assert flipper.stdout.readline().strip() == 'flipping', flipper.stderr.read()
        outcomes = {'copied': 0, 'refused': 0}
        for dummy in range(400):
            tree = tempfile.mkdtemp(dir=str(arena.base))
            try:
                _workdir_source.copy_working_dir(str(source), tree)
            except _workdir_source.SourceError as exc:
                assert 'symbolic link' in str(exc) or 'not a regular file' in str(exc), exc
                outcomes['refused'] += 1
            else:
                assert db_paths(os.path.join(tree, 'nexus.db')) == db_paths(str(source / 'good.db'))
                outcomes['copied'] += 1
            finally:
                shutil.rmtree(tree)
        # The module, as the DR rollback runs it, while the account keeps flipping.
        out = run_module(MODULE, module_args(data, src=str(source), backup_password=None))
    finally:
        alive = flipper.poll() is None
        flipper.kill()
        dummy, flipper_err = flipper.communicate()
    print('\nflipped source: %(copied)d copies of the regular file, %(refused)d refusals of the link' % outcomes)
    assert alive, 'the flipping process died: %s' % flipper_err
    assert outcomes['refused'] and outcomes['copied']  # both sides of the race were really met
    if out.get('failed'):
        assert 'symbolic link' in out['msg'] and 'nothing was changed' in out['msg'], out['msg']
    else:
        assert db_paths(str(data / 'nexus.db')) == db_paths(str(source / 'good.db'))
    assert not any(p.startswith('victim/') for p in db_paths(str(data / 'nexus.db')))
    assert arena.victim_state() == victim


def test_working_dir_source_that_is_a_file_only_while_looked_at_is_not_followed(arena, monkeypatch):
    """The race won every time: nexus.db is a link to a root-only database except while root looks at it.

    Injected around each look (``lstat``/``stat`` of the source's nexus.db, whichever the code uses):
    the account makes it a regular file just before and a link again just after. A copy that checks
    a path and then opens it by that path would take the root-only file.
    """
    source = account_data_dir(arena.base) / 'pre-restore-2026-01-01-000000'
    b.make_data_dir(source, live=3, key_password=KEYRING_PASSWORD, prefix='good')
    os.link(str(source / 'nexus.db'), str(source / 'good.db'))
    chown_tree(source)
    b.make_db(arena.victim / 'nexus.db', live=2, prefix='victim')
    os.chmod(str(arena.victim / 'nexus.db'), 0o600)
    victim = arena.victim_state()
    db = source / 'nexus.db'
    to_file = ['sh', '-c', 'ln -f "$1/good.db" "$1/tmp" && mv -T "$1/tmp" "$1/nexus.db"', 'sh', source]
    to_link = ['sh', '-c', 'ln -s "$2" "$1/tmp" && mv -T "$1/tmp" "$1/nexus.db"', 'sh', source,
               arena.victim / 'nexus.db']
    as_nobody(to_link)
    looks = []

    def wrap(real):
        def look(path, *args, **kwargs):
            where = os.path.join(_fd_target(kwargs.get('dir_fd')), str(path))
            if os.path.basename(where) != 'nexus.db' or os.path.dirname(where) != str(source):
                return real(path, *args, **kwargs)
            looks.append(where)
            as_nobody(to_file)
            try:
                return real(path, *args, **kwargs)
            finally:
                as_nobody(to_link)
        return look

    monkeypatch.setattr(os, 'lstat', wrap(os.lstat))
    monkeypatch.setattr(os, 'stat', wrap(os.stat))
    tree = tempfile.mkdtemp(dir=str(arena.base))
    try:
        with pytest.raises(_workdir_source.SourceError, match='symbolic link') as info:
            _workdir_source.copy_working_dir(str(source), tree)
        assert str(db) in str(info.value)
    finally:
        monkeypatch.undo()
        shutil.rmtree(tree)
    assert looks, 'the source was never looked at: the injected race did not run'
    assert os.path.islink(str(db))
    assert arena.victim_state() == victim


def _fd_target(fd):
    """The directory a dir fd stands for ('' for none): to recognise ``stat(name, dir_fd=)`` calls."""
    try:
        return os.readlink('/proc/self/fd/%d' % fd) if isinstance(fd, int) else ''
    except OSError:
        return ''


# --- 3. links where the data dir's directories and files are expected ------------------------------

def test_symlinked_data_dir_data_is_refused_by_the_module(arena):
    data = account_data_dir(arena.base)
    as_nobody(['sh', '-c', 'rm -rf "$1/data" && ln -s "$2" "$1/data"', 'sh', data, arena.victim])
    victim, before = arena.victim_state(), snapshot(data)
    out = run_module(MODULE, module_args(data))
    assert out.get('failed'), out
    assert str(data / 'data') in out['msg'] and 'symbolic link' in out['msg'] and 'nothing was changed' in out['msg']
    assert arena.victim_state() == victim and snapshot(data) == before


@pytest.mark.parametrize('planted, target', [
    ('data/keys', 'keys'), ('nexus.db', 'shadow'), ('nexus.db-wal', 'shadow'), ('nexus.db-shm', 'shadow'),
])
def test_symlinked_live_item_is_refused(arena, planted, target):
    data = account_data_dir(arena.base)
    as_nobody(['sh', '-c', 'rm -rf "$1" && ln -s "$2" "$1"', 'sh', data / planted, arena.victim / target])
    victim, before = arena.victim_state(), snapshot(data)
    with pytest.raises(_restore.RestoreFailed, match='symbolic link') as info:
        restore_core(data)
    assert str(data / planted) in str(info.value) and 'nothing was changed' in str(info.value)
    assert arena.victim_state() == victim and snapshot(data) == before


DIR_FLIPPER = '''
import os, sys, time
os.chdir(sys.argv[1])
victim = sys.argv[2]
print('flipping', flush=True)
while True:
    try:
        os.rename('data', 'data.real')
        os.symlink(victim, 'data')
        time.sleep(0.002)
        os.unlink('data')
        os.rename('data.real', 'data')
    except OSError:
        pass
    time.sleep(0.002)
'''


def test_data_dir_flipped_to_a_link_during_restores_never_touches_root_files(arena):
    data = account_data_dir(arena.base)
    victim = arena.victim_state()
    flipper = popen_as_nobody([sys.executable, '-c', DIR_FLIPPER, data, arena.victim])
    outcomes = {}
    try:
        assert flipper.stdout.readline().strip() == 'flipping', flipper.stderr.read()
        for dummy in range(15):
            try:
                restore_core(data)
                outcome = 'restored'
            except (_restore.RestoreFailed, _swap.RollbackFailed) as exc:
                # Which check meets the flip varies (a link, a missing or a replaced directory); any
                # clean refusal will do, as long as root's files stay as they were.
                outcome = '%s: %s' % (type(exc).__name__, str(exc).replace(str(data), '<data_dir>')[:90])
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            assert arena.victim_state() == victim
    finally:
        flipper.kill()
        flipper.wait()
    print('\nflipping data dir: %r' % outcomes)
    assert arena.victim_state() == victim


# --- 4. the restore lock ---------------------------------------------------------------------------

HOLD_LOCK = '''
import fcntl, os, sys, time
fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:]]
for fd in fds:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print('locked', flush=True)
time.sleep(300)
'''


def test_a_lock_any_user_can_take_does_not_stop_a_restore(arena):
    data = account_data_dir(arena.base)
    holder = popen_as_nobody([sys.executable, '-c', HOLD_LOCK, arena.base, data])
    try:
        assert holder.stdout.readline().strip() == 'locked', holder.stderr.read()
        out = run_module(MODULE, module_args(data))
    finally:
        holder.kill()
        holder.wait()
    assert not out.get('failed'), out.get('msg')
    assert out['changed'] and out['secrets'] == 12
    lock = os.path.join(_layout.Layout(str(data)).state_dir, _swap.LOCK_NAME)
    st = os.lstat(lock)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
    res = nobody_python('import sys; open(sys.argv[1])', lock, check=False)
    assert res.returncode != 0 and 'Permission denied' in res.stderr


@pytest.mark.parametrize('plant', ['link-to-victim', 'own-dir-with-link'])
def test_lock_place_planted_by_the_account_is_refused(arena, plant):
    shared = arena.base / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    data = account_data_dir(shared)
    state_dir = _layout.Layout(str(data)).state_dir
    if plant == 'link-to-victim':
        as_nobody(['ln', '-s', arena.victim, state_dir])
        expected = 'symbolic link'
    else:
        as_nobody(['sh', '-c', 'mkdir -m 0700 "$1" && ln -s "$2" "$1/lock"', 'sh', state_dir, arena.victim / 'shadow'])
        expected = 'not private'
    victim, before = arena.victim_state(), snapshot(data)
    with pytest.raises(_restore.RestoreFailed, match=expected) as info:
        restore_core(data)
    assert state_dir in str(info.value) and 'nothing was changed' in str(info.value)
    assert arena.victim_state() == victim and snapshot(data) == before


# --- 5. diff mode ----------------------------------------------------------------------------------

def test_diff_never_follows_a_wal_link_to_a_root_file(arena):
    data = account_data_dir(arena.base)
    shadow = (arena.victim / 'shadow').read_bytes()
    secret_hash = hashlib.sha256(shadow).hexdigest()
    as_nobody(['ln', '-s', arena.victim / 'shadow', data / 'nexus.db-wal'])
    victim = arena.victim_state()
    out = run_module(MODULE, module_args(data), check=True, diff=True)
    assert out.get('failed') and 'symbolic link' in out['msg'], out
    dumped = json.dumps({k: v for k, v in out.items() if k != '_run'}) + out['_run'].stdout
    assert secret_hash not in dumped and 'size=%d ' % len(shadow) not in dumped
    # What the diff reports when a link appears after the check: the link, never its target.
    facts = _restore.live_facts(_layout.Layout(str(data)))
    assert facts['nexus.db-wal'] == {'kind': 'symbolic link, not followed'}
    assert secret_hash not in _restore.facts_text(facts)
    assert arena.victim_state() == victim
