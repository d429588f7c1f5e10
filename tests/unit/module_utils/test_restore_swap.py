"""The restore swap on plain files: success, rollback at every step, crash recovery at every step.

Faults are injected at ``_swap.checkpoint`` (the named point before each change). A raised OSError
must be rolled back at once; a crash (the child process calls ``os._exit``) must be finished or undone
by ``recover()`` on the next run, and so must a crash during that recovery.
"""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _swap

KEYS = ('age.key', 'master.key', 'signing.key', 'verify.key')


def snapshot(root):
    """``{relative path: (kind, mode, content)}`` of everything under ``root`` but the test's staging dir."""
    found = {}
    if not os.path.isdir(root):
        return None
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if rel.startswith('.nexus-restore-test'):
                continue
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as fh:
                    found[rel] = ('file', stat.S_IMODE(st.st_mode), fh.read())
            else:
                found[rel] = ('dir', stat.S_IMODE(st.st_mode), None)
    return found


def write(path, data, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as fh:
        fh.write(data)
    os.chmod(path, mode)


def make_live(data_dir, wal=True):
    write(os.path.join(data_dir, 'nexus.db'), b'old-db', 0o644)
    if wal:
        write(os.path.join(data_dir, 'nexus.db-wal'), b'old-wal-with-committed-rows')
        write(os.path.join(data_dir, 'nexus.db-shm'), b'old-shm')
    for key in KEYS:
        write(os.path.join(data_dir, 'data', 'keys', key), b'old-' + key.encode())
    write(os.path.join(data_dir, 'data', 'keys', 'extra.key'), b'old-extra')  # nexusctl never removes these


def make_staging(parent):
    staging = os.path.join(parent, '.nexus-restore-test')
    root = os.path.join(staging, 'tree')
    write(os.path.join(root, 'nexus.db'), b'new-db')
    for key in KEYS:
        write(os.path.join(root, 'data', 'keys', key), b'new-' + key.encode())
    return staging, root


def expected_new():
    new = {'nexus.db': ('file', 0o600, b'new-db'), 'data': ('dir', 0o755, None),
           'data/keys': ('dir', 0o755, None)}
    for key in KEYS:
        new['data/keys/' + key] = ('file', 0o600, b'new-' + key.encode())
    return new


def live_only(snap):
    """The NEXUS files of a data dir snapshot (without our own pre-restore copies)."""
    return {k: v for k, v in (snap or {}).items() if not k.startswith('pre-restore')}


class Scenario(object):
    def __init__(self, tmp_path, fresh=False, keep=True, wal=True):
        self.data_dir = str(tmp_path / 'nexus')
        if fresh:
            self.staging_parent = str(tmp_path)
        else:
            make_live(self.data_dir, wal=wal)
            self.staging_parent = self.data_dir
        self.before = snapshot(self.data_dir)
        self.staging, self.root = make_staging(self.staging_parent)
        self.layout = _layout.Layout(self.data_dir)
        self.pre = os.path.join(self.data_dir, 'pre-restore-2026-01-01-000000')
        self.journal = _swap.plan(self.layout, self.root, self.staging, self.pre, keep)

    def run(self):
        return _swap.swap_in(self.layout, self.journal)

    def assert_old_state(self):
        assert snapshot(self.data_dir) == self.before

    def assert_new_state(self):
        got = live_only(snapshot(self.data_dir))
        assert got['nexus.db'] == ('file', 0o600, b'new-db')
        assert {k for k in got if k.startswith('data/keys/')} == {'data/keys/' + k for k in KEYS}
        for key in KEYS:
            assert got['data/keys/' + key][2] == b'new-' + key.encode()
        assert not any(k.startswith('nexus.db-') for k in got)
        assert not os.path.exists(self.layout.journal_path)
        assert not os.path.exists(self.staging)


def record_checkpoints(tmp_path, **kwargs):
    labels = []
    scenario = Scenario(tmp_path / 'record', **kwargs)
    original = _swap.checkpoint
    _swap.checkpoint = labels.append
    try:
        scenario.run()
    finally:
        _swap.checkpoint = original
    return labels


def test_swap_moves_old_state_aside_complete_and_installs_new(tmp_path):
    sc = Scenario(tmp_path)
    done = sc.run()
    sc.assert_new_state()
    pre = snapshot(sc.pre)
    # The pre-restore copy is a complete NEXUS working dir: db with its WAL, and the whole keyring.
    assert pre['nexus.db'][2] == b'old-db'
    assert pre['nexus.db-wal'][2] == b'old-wal-with-committed-rows'
    assert pre['nexus.db-shm'][2] == b'old-shm'
    assert pre['data/keys/extra.key'][2] == b'old-extra'
    assert not os.path.exists(os.path.join(sc.data_dir, 'data', 'keys', 'extra.key'))
    assert done['state'] == _swap.COMMITTED and 'cleanup_error' not in done


def test_swap_without_keeping_removes_pre_restore_copy(tmp_path):
    sc = Scenario(tmp_path, keep=False)
    sc.run()
    sc.assert_new_state()
    assert not os.path.exists(sc.pre)
    assert sorted(os.listdir(sc.data_dir)) == ['data', 'nexus.db']


def test_swap_into_missing_data_dir_creates_it_private(tmp_path):
    sc = Scenario(tmp_path, fresh=True)
    assert sc.journal['created_dirs'] == [sc.data_dir, os.path.join(sc.data_dir, 'data')]
    assert not sc.journal['keep_pre_restore']
    sc.run()
    sc.assert_new_state()
    assert stat.S_IMODE(os.stat(sc.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(sc.data_dir, 'data')).st_mode) == 0o700
    assert not os.path.exists(sc.pre)


@pytest.mark.parametrize('fresh', [False, True], ids=['existing', 'fresh'])
def test_failure_at_every_step_rolls_back_completely(tmp_path, fresh):
    labels = record_checkpoints(tmp_path, fresh=fresh)
    commit = labels.index('journal committed')
    assert len(labels) > commit + 1
    for index, label in enumerate(labels):
        sc = Scenario(tmp_path / ('fail%d' % index), fresh=fresh)
        calls = []

        def fault(name, index=index):  # calls: this iteration's list (fault runs only inside it)
            calls.append(name)
            if len(calls) - 1 == index:
                raise OSError(28, 'No space left on device (injected at %s)' % name)

        original = _swap.checkpoint
        _swap.checkpoint = fault
        try:
            if index <= commit:
                with pytest.raises(_swap.SwapError, match='previous state was put back|nothing was changed'):
                    sc.run()
            else:
                done = sc.run()
                assert 'clean-up failed' in done['cleanup_error'], label
        finally:
            _swap.checkpoint = original
        if index <= commit:
            if fresh:
                assert not os.path.exists(sc.data_dir), label
            else:
                sc.assert_old_state()
            assert not os.path.exists(sc.pre), label
            # Once the journal exists the swap owns staging and removes it; before, the caller does.
            assert os.path.exists(sc.staging) == (index <= labels.index('journal swapping')), label
        else:
            assert _swap.recover(sc.layout) == 'completed', label
            sc.assert_new_state()


def crash_in_child(func, crash_at):
    """Run ``func`` in a forked child that dies (os._exit) at checkpoint number ``crash_at``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        calls = []

        def die(name):
            calls.append(name)
            if len(calls) - 1 == crash_at:
                os._exit(86)

        _swap.checkpoint = die
        try:
            func()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _pid, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status)


@pytest.mark.parametrize('fresh', [False, True], ids=['existing', 'fresh'])
def test_crash_at_every_step_is_finished_or_undone_by_the_next_run(tmp_path, fresh):
    labels = record_checkpoints(tmp_path, fresh=fresh)
    commit = labels.index('journal committed')
    for index, label in enumerate(labels):
        sc = Scenario(tmp_path / ('crash%d' % index), fresh=fresh)
        assert crash_in_child(sc.run, index) == 86, label
        outcome = _swap.recover(sc.layout)
        if index <= commit:
            if index <= labels.index('journal swapping'):
                assert outcome is None, label  # died before the journal: nothing to undo
            else:
                assert outcome == 'rolled_back', label
            if fresh:
                # At most the empty data dir it had just created is left.
                assert snapshot(sc.data_dir) in (None, {}), label
            else:
                assert snapshot(sc.data_dir) == sc.before, label
        else:
            assert outcome == 'completed', label
            sc.assert_new_state()
        assert _swap.recover(sc.layout) is None  # nothing left to do


def test_crash_during_recovery_is_itself_recoverable(tmp_path):
    labels = record_checkpoints(tmp_path)
    commit = labels.index('journal committed')
    # Crash right before the commit (rollback path) and right after it (finish path).
    for crash_at in (commit - 1, commit + 1):
        probe = Scenario(tmp_path / ('probe%d' % crash_at))
        assert crash_in_child(probe.run, crash_at) == 86
        steps = []
        original = _swap.checkpoint
        _swap.checkpoint = steps.append
        try:
            _swap.recover(probe.layout)
        finally:
            _swap.checkpoint = original
        assert steps
        for second in range(len(steps)):
            sc = Scenario(tmp_path / ('r%d-%d' % (crash_at, second)))
            assert crash_in_child(sc.run, crash_at) == 86
            assert crash_in_child(lambda sc=sc: _swap.recover(sc.layout), second) == 86
            assert _swap.recover(sc.layout) in ('rolled_back', 'completed')
            if crash_at < commit:
                assert snapshot(sc.data_dir) == sc.before
            else:
                sc.assert_new_state()


def test_corrupt_journal_is_reported_not_guessed(tmp_path):
    layout = _layout.Layout(str(tmp_path / 'nexus'))
    os.close(_swap.open_state_dir(layout))
    with os.fdopen(os.open(layout.journal_path, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as fh:
        fh.write('{"format": 2, "state": "swa')
    with pytest.raises(_swap.SwapError, match='corrupt'):
        _swap.recover(layout)
    assert os.path.exists(layout.journal_path)


@pytest.mark.parametrize('wal', [False, True], ids=['no-old-wal', 'old-wal'])
def test_wal_of_a_server_started_on_a_half_restored_dir_leaves_with_the_new_database(tmp_path, wal):
    """systemd may restart NEXUS after a crash mid-swap; its -wal/-shm belong to the new database."""
    labels = record_checkpoints(tmp_path, wal=wal)
    sc = Scenario(tmp_path / 'half', wal=wal)
    assert crash_in_child(sc.run, labels.index('install data/keys')) == 86
    for suffix in ('-wal', '-shm'):
        with open(sc.layout.db_path + suffix, 'wb') as fh:
            fh.write(b'frames written over the restored database')
    assert _swap.recover(sc.layout) == 'rolled_back'
    assert snapshot(sc.data_dir) == sc.before


def test_wal_of_a_server_started_on_the_untouched_old_state_is_kept(tmp_path):
    """Crash before anything moved, server ran on the old state: its WAL holds real commits."""
    labels = record_checkpoints(tmp_path, wal=False)
    sc = Scenario(tmp_path / 'early', wal=False)
    assert crash_in_child(sc.run, labels.index('save nexus.db')) == 86
    with open(sc.layout.db_path + '-wal', 'wb') as fh:
        fh.write(b'commits of the old database')
    assert _swap.recover(sc.layout) == 'rolled_back'
    with open(sc.layout.db_path + '-wal', 'rb') as fh:
        assert fh.read() == b'commits of the old database'
