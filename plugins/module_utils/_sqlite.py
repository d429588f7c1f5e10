# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent snapshot of NEXUS's live SQLite database, and read-only checks of a copy.

nexusctl copies ``nexus.db`` as a plain file and so misses every transaction still in the WAL
(docs/nexus-behaviour.md §3). A snapshot here is what one read transaction sees: the file plus the committed WAL
frames. Private to this collection.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

from urllib.parse import quote

# Pages copied per backup step: bounded memory, few round trips (16 MiB at 4 KiB pages).
BACKUP_STEP_PAGES = 4096
BUSY_TIMEOUT_S = 30
SNAPSHOT_NAME = 'nexus.db'


class DatabaseError(sqlite3.DatabaseError):
    """A user-facing reason why a database cannot be snapshotted or read."""


def _uri(path, **params):
    query = '&'.join('%s=%s' % item for item in sorted(params.items()))
    return 'file:%s?%s' % (quote(os.path.abspath(path)), query)


def _open_read_only(db_path):
    """Open without creating files beside a self-contained database.

    With a ``-wal`` beside it (a running server, or one that was killed) the database is opened
    read-only, which reads the committed WAL frames. Without one, nothing but the file holds data,
    and ``immutable=1`` reads it without creating ``-wal``/``-shm`` (staged copies, stopped servers).
    """
    if not os.path.isfile(db_path):
        raise DatabaseError('database %s does not exist' % db_path)
    if os.path.exists(db_path + '-wal'):
        uri = _uri(db_path, mode='ro')
    else:
        uri = _uri(db_path, mode='ro', immutable=1)
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


def _open_source(db_path):
    """Open the live database for the backup: it must see everything committed.

    A WAL beside the file means a server has it open (or crashed): read-only access reads the
    WAL and changes nothing. Without a WAL, a normal connection is used, so that a server starting
    meanwhile is seen through SQLite's locks; the ``-wal``/``-shm`` it creates get the database's
    owner and mode and are removed when it closes.
    """
    if not os.path.isfile(db_path):
        raise DatabaseError('database %s does not exist' % db_path)
    if os.path.exists(db_path + '-wal'):
        return sqlite3.connect(_uri(db_path, mode='ro'), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    return sqlite3.connect(_uri(db_path, mode='rw'), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


class Snapshot(object):
    """One point in time of the live database: the first ``size`` bytes of the file at ``path``.

    ``streamed`` is True when ``path`` is the live database file itself, False for a private
    online-backup copy. ``secrets`` is the live secret count at that point in time.
    """

    def __init__(self, path, size, secrets, streamed):
        self.path = path
        self.size = size
        self.secrets = secrets
        self.streamed = streamed


@contextlib.contextmanager
def open_snapshot(db_path, scratch_dir, stream=True):
    """Yield a :class:`Snapshot` of ``db_path`` (committed WAL content included), valid inside the ``with``.

    The source keeps one read transaction open until the ``with`` ends, so the snapshot is one
    point in time and concurrent commits never change it. When the WAL is empty at that point
    (a stopped server, or right after a truncating checkpoint), the database file itself holds
    exactly that snapshot, and keeps holding it while the read lock is held: SQLite never writes
    into the database file past an open reader's snapshot. It is then read straight from there
    (``stream``), with no copy and no extra disk space. Otherwise SQLite's online backup API
    copies the snapshot into ``scratch_dir`` first (0600), and that copy is what is read.
    Changes nothing beside the live database.
    """
    try:
        source = _open_source(db_path)
    except sqlite3.Error as exc:
        raise DatabaseError('cannot open database %s: %s' % (db_path, exc))
    try:
        try:
            source.execute('BEGIN')
            source.execute('SELECT count(*) FROM sqlite_master').fetchone()  # pins the snapshot
            size = _file_size_if_it_holds_the_snapshot(source, db_path) if stream else None
            if size is None:
                path = os.path.join(scratch_dir, SNAPSHOT_NAME)
                _online_backup(source, path)
                size = os.path.getsize(path)
            else:
                path = db_path
        except sqlite3.DatabaseError as exc:
            raise DatabaseError('cannot snapshot database %s: %s' % (db_path, exc))
        secrets = _count_live(source, db_path)
        yield Snapshot(path, size, secrets, streamed=path == db_path)
    finally:
        source.close()


def _file_size_if_it_holds_the_snapshot(source, db_path):
    """The snapshot's size in bytes when the database file holds exactly it, else None.

    Called inside the pinned read transaction. Rollback-journal mode: the reader's SHARED lock
    keeps every writer out of the file. WAL mode: only an empty WAL proves that no committed
    page lives outside the file (an empty WAL after the pin cannot hide frames this reader uses:
    SQLite neither resets nor truncates a WAL that an open reader still reads from).
    """
    page_size = source.execute('PRAGMA page_size').fetchone()[0]
    size = source.execute('PRAGMA page_count').fetchone()[0] * page_size
    if source.execute('PRAGMA journal_mode').fetchone()[0] == 'wal':
        try:
            if os.path.getsize(db_path + '-wal') != 0:
                return None
        except OSError:
            return None
    if os.path.getsize(db_path) < size:
        return None
    return size


def _online_backup(source, dest_path):
    """Copy what ``source``'s open read transaction sees into a new 0600 file at ``dest_path``."""
    fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    target = sqlite3.connect(dest_path, isolation_level=None)
    try:
        # The copy is a private temp file, discarded if anything fails: no journal, no syncs
        # (more than twice as fast); the caller fsyncs what it makes from it.
        target.execute('PRAGMA journal_mode=OFF')
        target.execute('PRAGMA synchronous=OFF')
        source.backup(target, pages=BACKUP_STEP_PAGES)
    finally:
        target.close()


def integrity_check(db_path):
    """None when ``PRAGMA integrity_check`` says 'ok', else the problems it reports."""
    try:
        conn = _open_read_only(db_path)
    except sqlite3.Error as exc:
        return 'cannot open %s: %s' % (db_path, exc)
    try:
        rows = [row[0] for row in conn.execute('PRAGMA integrity_check')]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    if rows == ['ok']:
        return None
    return '; '.join(str(row) for row in rows[:20])


def count_live_secrets(db_path):
    """The number of secrets not soft-deleted."""
    try:
        conn = _open_read_only(db_path)
    except sqlite3.Error as exc:
        raise DatabaseError('cannot open %s: %s' % (db_path, exc))
    try:
        return _count_live(conn, db_path)
    finally:
        conn.close()


def _count_live(conn, db_path):
    try:
        return conn.execute('SELECT count(*) FROM secrets WHERE deleted_at IS NULL').fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DatabaseError('%s is not a NEXUS database: %s' % (db_path, exc))
