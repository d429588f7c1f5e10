"""Snapshots of a live WAL database, and the read-only checks, on real SQLite files.

A snapshot is streamed from the live file when its WAL is empty, else copied by SQLite's online
backup API (``streamed`` says which); the tests take both ways on real files.
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._sqlite import (
    DatabaseError, count_live_secrets, integrity_check, open_snapshot)

from tests.nexus_server.storage_sqlite import SCHEMA


def open_live(path):
    """A connection like the server's: WAL mode, and no automatic checkpoint (the WAL keeps growing)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('PRAGMA wal_autocheckpoint=0')
    for statement in SCHEMA:
        conn.execute(statement)
    return conn


def add_secrets(conn, start, count, deleted=False):
    for i in range(start, start + count):
        conn.execute("INSERT INTO secrets (id, path, value, metadata, version, created_at, created_by, updated_at,"
                     " updated_by, deleted_at) VALUES (?, ?, ?, '{}', 1, 'now', 'admin-001', 'now', 'admin-001', ?)",
                     ('id-%d' % i, 'app/secret-%d' % i, os.urandom(200), 'then' if deleted else None))


def files(directory):
    return sorted(os.listdir(str(directory)))


def take_snapshot(db, out, stream=True):
    """Write the snapshot of ``db`` to the file ``out`` (as the backup reads it); return the Snapshot."""
    scratch = '%s.scratch' % out
    os.mkdir(scratch, 0o700)
    try:
        with open_snapshot(str(db), scratch, stream=stream) as snap:
            with open(snap.path, 'rb') as src, open(str(out), 'wb') as dst:
                dst.write(src.read(snap.size))  # test databases are small
    finally:
        shutil.rmtree(scratch)
    return snap


def test_snapshot_holds_what_only_the_wal_holds(tmp_path):
    live = tmp_path / 'nexus.db'
    conn = open_live(live)
    add_secrets(conn, 0, 50)
    assert os.path.getsize(str(live) + '-wal') > 0
    # A plain copy (nexusctl's way) misses everything: the tables are still in the WAL.
    shutil.copyfile(str(live), str(tmp_path / 'plain-copy.db'))
    with pytest.raises(DatabaseError):
        count_live_secrets(str(tmp_path / 'plain-copy.db'))
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    with open_snapshot(str(live), str(scratch)) as snap:
        assert not snap.streamed and snap.path == str(scratch / 'nexus.db')  # the WAL is not empty
        assert os.stat(snap.path).st_mode & 0o777 == 0o600
        assert snap.secrets == 50 == count_live_secrets(snap.path)
        assert integrity_check(snap.path) is None
    conn.close()


@pytest.mark.parametrize('stream,empty_wal,streamed', [(True, False, False), (False, False, False), (True, True, True)],
                         ids=['stream-allowed', 'online-backup', 'streamed'])
def test_snapshot_changes_nothing_beside_a_live_database(tmp_path, stream, empty_wal, streamed):
    """``streamed``: the server's WAL was just emptied by a truncating checkpoint (the connection stays
    open), so the live file itself is read. Otherwise the WAL holds the latest change (5 secrets
    deleted, in pages the file already has: the file is full-size but stale) and it is copied."""
    live_dir = tmp_path / 'live'
    live_dir.mkdir()
    conn = open_live(live_dir / 'nexus.db')
    add_secrets(conn, 0, 20)
    assert conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone() == (0, 0, 0)
    conn.execute("UPDATE secrets SET deleted_at = 'now' WHERE path IN (%s)"
                 % ', '.join("'app/secret-%d'" % i for i in range(5)))
    page_count, page_size = (conn.execute('PRAGMA %s' % p).fetchone()[0] for p in ('page_count', 'page_size'))
    assert os.path.getsize(str(live_dir / 'nexus.db')) == page_count * page_size  # only the WAL tells it is stale
    if empty_wal:
        assert conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone() == (0, 0, 0)
    assert (os.path.getsize(str(live_dir / 'nexus.db-wal')) == 0) is empty_wal
    before = {name: (live_dir / name).read_bytes() for name in files(live_dir)}
    snap = take_snapshot(live_dir / 'nexus.db', tmp_path / 'snap.db', stream)
    assert snap.streamed is streamed and snap.secrets == 15
    assert snap.path == str(live_dir / 'nexus.db') if streamed else snap.path.endswith('.scratch/nexus.db')
    assert files(live_dir) == ['nexus.db', 'nexus.db-shm', 'nexus.db-wal']
    assert (live_dir / 'nexus.db').read_bytes() == before['nexus.db']
    assert (live_dir / 'nexus.db-wal').read_bytes() == before['nexus.db-wal']
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 15
    conn.close()


@pytest.mark.parametrize('stream', [True, False], ids=['streamed', 'online-backup'])
def test_snapshot_of_a_stopped_database_leaves_no_files_behind(tmp_path, stream):
    live_dir = tmp_path / 'live'
    live_dir.mkdir()
    conn = open_live(live_dir / 'nexus.db')
    add_secrets(conn, 0, 10)
    add_secrets(conn, 10, 3, deleted=True)
    conn.close()  # a clean stop checkpoints and removes -wal/-shm
    assert files(live_dir) == ['nexus.db']
    before = (live_dir / 'nexus.db').read_bytes()
    snap = take_snapshot(live_dir / 'nexus.db', tmp_path / 'snap.db', stream)
    assert snap.streamed is stream and snap.secrets == 10
    assert files(live_dir) == ['nexus.db'] and (live_dir / 'nexus.db').read_bytes() == before
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 10
    assert integrity_check(str(tmp_path / 'snap.db')) is None
    assert files(tmp_path) == ['live', 'snap.db']
    if stream:
        assert (tmp_path / 'snap.db').read_bytes() == before  # the file itself, byte for byte


def test_snapshot_after_a_crash_reads_the_left_over_wal(tmp_path):
    """kill -9 leaves -wal/-shm: their committed content belongs in the backup."""
    live_dir = tmp_path / 'live'
    live_dir.mkdir()
    script = textwrap.dedent('''
        import os, sqlite3, sys
        sys.path.insert(0, %r)
        from tests.nexus_server.storage_sqlite import SCHEMA
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute('PRAGMA journal_mode=WAL'); conn.execute('PRAGMA wal_autocheckpoint=0')
        for s in SCHEMA: conn.execute(s)
        for i in range(30):
            conn.execute("INSERT INTO secrets (id, path, value, created_at, created_by, updated_at, updated_by)"
                         " VALUES (?, ?, x'00', 'now', 'a', 'now', 'a')", (str(i), 'p%%d' %% i))
        os._exit(0)  # no close, no checkpoint
    ''' % os.getcwd())
    subprocess.run([sys.executable, '-c', script, str(live_dir / 'nexus.db')], check=True)
    assert 'nexus.db-wal' in files(live_dir)
    snap = take_snapshot(live_dir / 'nexus.db', tmp_path / 'snap.db')
    assert not snap.streamed
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 30


WRITER = textwrap.dedent('''
    import os, select, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    conn.execute('PRAGMA wal_autocheckpoint=0')
    total = 0

    def say(*words):
        sys.stdout.write(' '.join(str(w) for w in words) + '\\n')
        sys.stdout.flush()

    while True:
        if select.select([sys.stdin], [], [], 0)[0]:
            command = sys.stdin.readline().strip()
            if command in ('stop', ''):
                say('total', total)
                break
            if command == 'pause':  # empty the WAL, then commit nothing until 'resume'
                busy, frames, done = conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()
                say('paused', total, busy, os.path.getsize(sys.argv[1] + '-wal'))
                sys.stdin.readline()
        conn.execute("INSERT INTO secrets (id, path, value, metadata, version, created_at, created_by, updated_at,"
                     " updated_by) VALUES (?, ?, ?, '{}', 1, 'now', 'w', 'now', 'w')",
                     ('w-%d' % total, 'writer/%d' % total, os.urandom(200)))
        total += 1
        say('committed', total)
''')


class WriterProcess(object):
    """Another process committing one row per transaction into ``db`` until told to stop; it reports
    every commit on a pipe, so the test waits by reading, never by polling."""

    def __init__(self, db):
        self.proc = subprocess.Popen([sys.executable, '-c', WRITER, str(db)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.committed = 0

    def _line(self):
        words = self.proc.stdout.readline().split()
        assert words, 'the writer process died (rc=%s)' % self.proc.poll()
        return words

    def wait_for_commits(self, count):
        """Block until the writer has reported ``count`` commits in all."""
        while self.committed < count:
            words = self._line()
            if words[0] == 'committed':
                self.committed = int(words[1])

    def _send(self, command):
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()

    def pause(self):
        """Empty the WAL (truncating checkpoint) and hold further commits: ``(commits, busy, WAL size)``."""
        self._send('pause')
        while True:
            words = self._line()
            if words[0] == 'committed':
                self.committed = int(words[1])
            elif words[0] == 'paused':
                self.committed = int(words[1])
                return self.committed, int(words[2]), int(words[3])

    def resume(self):
        self._send('resume')

    def stop(self):
        """Stop it; the number of rows it committed in all."""
        if self.proc.poll() is None:
            self._send('stop')
        total = None
        for line in self.proc.stdout:
            words = line.split()
            if words and words[0] == 'total':
                total = int(words[1])
        self.proc.wait(30)
        return total


@pytest.mark.parametrize('stream,pause,streamed', [(True, False, False), (False, False, False), (True, True, True)],
                         ids=['stream-allowed', 'online-backup', 'streamed'])
def test_snapshot_while_another_process_writes(tmp_path, stream, pause, streamed):
    """Every row committed before the snapshot started is in it; the copy is intact. ``streamed``: the
    writer empties the WAL and pauses, the snapshot pins the live file, the writer goes on committing
    while it is read, and the snapshot holds exactly the rows of its start."""
    live = tmp_path / 'nexus.db'
    conn = open_live(live)
    conn.execute('BEGIN')
    add_secrets(conn, 0, 2000)
    conn.execute('COMMIT')
    writer = WriterProcess(live)
    try:
        writer.wait_for_commits(20)
        if pause:
            committed, busy, wal_size = writer.pause()
            assert (busy, wal_size) == (0, 0)
            scratch = '%s.scratch' % (tmp_path / 'snap.db')
            os.mkdir(scratch, 0o700)
            with open_snapshot(str(live), scratch, stream=stream) as snap:
                writer.resume()
                writer.wait_for_commits(committed + 20)  # commits land in the WAL while the file is read
                with open(snap.path, 'rb') as src, open(str(tmp_path / 'snap.db'), 'wb') as dst:
                    dst.write(src.read(snap.size))
            assert os.listdir(scratch) == []
            os.rmdir(scratch)
            committed_before = committed_after = 2000 + committed
        else:
            committed_before = 2000 + writer.committed
            snap = take_snapshot(live, tmp_path / 'snap.db', stream)
            committed_after = None
    finally:
        total = writer.stop()
    assert snap.streamed is streamed
    assert total is not None and total > 20
    got = count_live_secrets(str(tmp_path / 'snap.db'))
    assert committed_before <= got <= (committed_after or 2000 + total)
    assert got == snap.secrets
    assert integrity_check(str(tmp_path / 'snap.db')) is None
    conn.close()


def checkpointing_writer(db_path, stop, log, committed):
    """Commits rows and forces checkpoints (passive, full, truncate) until ``stop``; logs what it did
    and notifies ``committed`` (a Condition) after every commit."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=0.05)
    conn.execute('PRAGMA wal_autocheckpoint=1')  # the writer checkpoints after every commit, too
    i = 500000
    while not stop.is_set():
        try:
            add_secrets(conn, i, 1)
            with committed:
                log['commits'] += 1
                committed.notify_all()
            i += 1
            for mode in ('PASSIVE', 'FULL', 'TRUNCATE'):
                busy, frames, done = conn.execute('PRAGMA wal_checkpoint(%s)' % mode).fetchone()
                log['checkpoints'] += 1
                log['blocked'] += frames != done
        except sqlite3.OperationalError:  # busy: FULL/TRUNCATE wait for readers, with a short timeout
            log['busy'] += 1
    conn.close()


def test_a_streamed_snapshot_stays_one_point_in_time_while_checkpoints_run(tmp_path):
    """The point of streaming from the live file: while the read lock is held, the writer commits
    and checkpoints as hard as it can, and not one byte of what the snapshot reads changes."""
    live_dir = tmp_path / 'live'
    live_dir.mkdir()
    db = live_dir / 'nexus.db'
    conn = open_live(db)
    add_secrets(conn, 0, 300)
    conn.close()
    before = db.read_bytes()
    stop = threading.Event()
    log = {'commits': 0, 'checkpoints': 0, 'blocked': 0, 'busy': 0}
    committed = threading.Condition()
    thread = threading.Thread(target=checkpointing_writer, args=(str(db), stop, log, committed))
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    copied = bytearray()
    try:
        with open_snapshot(str(db), str(scratch)) as snap:
            assert snap.streamed and snap.path == str(db) and snap.size == len(before)
            thread.start()
            with open(snap.path, 'rb') as src:
                while len(copied) < snap.size:  # page by page, one commit and its checkpoints between pages
                    with committed:
                        commits = log['commits']
                        committed.wait_for(lambda: log['commits'] > commits, timeout=10)
                    copied += src.read(min(4096, snap.size - len(copied)))
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
    assert bytes(copied) == before
    assert log['commits'] >= len(before) // 4096 and log['blocked'] + log['busy'] > 0, log
    (tmp_path / 'snap.db').write_bytes(bytes(copied))
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 300
    after = sqlite3.connect(str(db))
    assert after.execute('SELECT count(*) FROM secrets').fetchone()[0] == 300 + log['commits']
    after.close()


def test_a_rollback_journal_database_is_streamed(tmp_path):
    """Not WAL (an old or converted database): the read lock alone keeps writers out of the file."""
    db = tmp_path / 'nexus.db'
    conn = open_live(db)
    add_secrets(conn, 0, 40)
    conn.execute('PRAGMA journal_mode=DELETE')
    conn.close()
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    with open_snapshot(str(db), str(scratch)) as snap:
        assert snap.streamed and snap.secrets == 40
        writer = sqlite3.connect(str(db), isolation_level=None, timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match='locked'):
            add_secrets(writer, 40, 1)
        writer.close()
    assert files(tmp_path) == ['nexus.db', 'scratch'] and files(scratch) == []


def test_snapshot_refuses_an_existing_destination(tmp_path):
    conn = open_live(tmp_path / 'nexus.db')
    add_secrets(conn, 0, 1)
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    (scratch / 'nexus.db').write_text('keep')
    with pytest.raises(FileExistsError):
        with open_snapshot(str(tmp_path / 'nexus.db'), str(scratch)):
            pass
    assert (scratch / 'nexus.db').read_text() == 'keep'
    conn.close()


def test_snapshot_of_missing_or_bogus_database(tmp_path):
    with pytest.raises(DatabaseError, match='does not exist'):
        take_snapshot(tmp_path / 'missing.db', tmp_path / 'a.db')
    (tmp_path / 'bogus.db').write_bytes(b'not sqlite' * 1000)
    with pytest.raises(DatabaseError, match='not a database'):
        take_snapshot(tmp_path / 'bogus.db', tmp_path / 'b.db')


def test_integrity_check_finds_corruption_without_creating_files(tmp_path):
    conn = open_live(tmp_path / 'live.db')
    add_secrets(conn, 0, 500)
    take_snapshot(tmp_path / 'live.db', tmp_path / 'snap.db')
    conn.close()
    staging = tmp_path / 'staging'
    staging.mkdir()
    good, bad = staging / 'good.db', staging / 'bad.db'
    shutil.copyfile(str(tmp_path / 'snap.db'), str(good))
    data = bytearray(good.read_bytes())
    page = 4096
    # Scribble over the cell area of a page in the middle of the secrets table.
    middle = (len(data) // page // 2) * page
    data[middle + 100:middle + 400] = os.urandom(300)
    bad.write_bytes(bytes(data))
    assert integrity_check(str(good)) is None
    problem = integrity_check(str(bad))
    assert problem and problem != 'ok'
    assert files(staging) == ['bad.db', 'good.db']


def test_integrity_check_of_non_databases(tmp_path):
    (tmp_path / 'text.db').write_text('hello' * 1000)
    assert 'not a database' in integrity_check(str(tmp_path / 'text.db'))
    assert 'does not exist' in integrity_check(str(tmp_path / 'missing.db'))


def test_count_live_secrets_ignores_soft_deleted(tmp_path):
    conn = open_live(tmp_path / 'nexus.db')
    add_secrets(conn, 0, 7)
    add_secrets(conn, 7, 5, deleted=True)
    assert take_snapshot(tmp_path / 'nexus.db', tmp_path / 'snap.db').secrets == 7
    conn.close()
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 7


def test_count_live_secrets_of_a_foreign_database(tmp_path):
    other = sqlite3.connect(str(tmp_path / 'other.db'))
    other.execute('CREATE TABLE t (x)')
    other.commit()
    other.close()
    with pytest.raises(DatabaseError, match='not a NEXUS database'):
        count_live_secrets(str(tmp_path / 'other.db'))


MEMORY_SCRIPT = textwrap.dedent('''
    import os, resource, sqlite3, sys
    from ansible_collections.nexus.secrets.plugins.module_utils._sqlite import open_snapshot
    src, scratch, megabytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = sqlite3.connect(src, isolation_level=None)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE secrets (id INTEGER PRIMARY KEY, value BLOB, deleted_at TEXT)')
    blob = os.urandom(64 * 1024)
    conn.execute('BEGIN')
    for _ in range(megabytes * 16):
        conn.execute('INSERT INTO secrets (value) VALUES (?)', (blob,))
    conn.execute('COMMIT')
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open_snapshot(src, scratch, stream=False) as snap:  # the online-backup copy
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, os.path.getsize(snap.path))
''')


@pytest.mark.slow  # a 200 MiB database
def test_snapshot_memory_is_bounded(tmp_path):
    proc = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, str(tmp_path / 'big.db'), str(tmp_path), '200'], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    grown_kib, size = (int(x) for x in proc.stdout.split())
    assert size > 200 * 1024 * 1024
    assert grown_kib < 48 * 1024, 'peak RSS grew by %d KiB for a 200 MiB snapshot' % grown_kib


def test_nexusctl_fixture_database(tmp_path):
    """The fixture made by nexusctl: intact, 12 live secrets, values that decrypt with its keyring."""
    import json

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ansible_collections.nexus.secrets.plugins.module_utils._archive import extract_archive
    from ansible_collections.nexus.secrets.plugins.module_utils._crypto import derive_key
    from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeReader
    from tests.unit.module_utils._fixtures import (
        BACKUP_PASSWORD, KEYRING_PASSWORD, LIVE_SECRETS, NEXUSCTL_BACKUP, fixture_path)

    with open(NEXUSCTL_BACKUP, 'rb') as src:
        extract_archive(EnvelopeReader(src, BACKUP_PASSWORD), str(tmp_path))
    db = str(tmp_path / 'nexus.db')
    assert integrity_check(db) is None
    assert count_live_secrets(db) == LIVE_SECRETS
    with open(fixture_path('expected-secrets.json')) as fh:
        expected = json.load(fh)
    master_blob = bytes.fromhex((tmp_path / 'data' / 'keys' / 'master.key').read_text())
    master = AESGCM(derive_key(KEYRING_PASSWORD, master_blob[:16])).decrypt(master_blob[16:28], master_blob[28:],
                                                                            None)
    conn = sqlite3.connect('file:%s?mode=ro&immutable=1' % db, uri=True)
    rows = dict(conn.execute('SELECT path, value FROM secrets WHERE deleted_at IS NULL').fetchall())
    deleted = {row[0] for row in conn.execute('SELECT path FROM secrets WHERE deleted_at IS NOT NULL')}
    conn.close()
    assert sorted(rows) == sorted(s['path'] for s in expected['live_secrets'])
    assert set(expected['soft_deleted_paths']) <= deleted
    for secret in expected['live_secrets']:
        blob = rows[secret['path']]
        assert AESGCM(master).decrypt(blob[:12], blob[12:], None).decode() == secret['value']
