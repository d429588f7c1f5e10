# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent snapshot of NEXUS's live SQLite database, and read-only checks of a copy.

nexusctl copies ``nexus.db`` as a plain file and so misses every transaction still in the WAL
(CONTRACT §3). SQLite's online backup API copies what a reader sees: the file plus the committed
WAL frames, as of one read transaction. Private to this collection.
"""

from __future__ import annotations

import os
import sqlite3

from urllib.parse import quote

# Pages copied per backup step: bounded memory, few round trips (16 MiB at 4 KiB pages).
BACKUP_STEP_PAGES = 4096
BUSY_TIMEOUT_S = 30


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


def snapshot_database(db_path, dest_path):
    """Write a consistent copy of ``db_path`` (committed WAL content included) to ``dest_path`` (0600).

    The source keeps one read transaction open across all backup steps, so the copy is one
    point in time and concurrent commits by the server never restart it.
    """
    fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        source = _open_source(db_path)
    except sqlite3.Error as exc:
        raise DatabaseError('cannot open database %s: %s' % (db_path, exc))
    try:
        target = sqlite3.connect(dest_path, isolation_level=None)
        try:
            # The copy is a private temp file, discarded if anything fails: no journal, no syncs
            # (more than twice as fast); the caller fsyncs what it makes from it.
            target.execute('PRAGMA journal_mode=OFF')
            target.execute('PRAGMA synchronous=OFF')
            source.execute('BEGIN')
            source.execute('SELECT count(*) FROM sqlite_master').fetchone()  # pins the snapshot
            source.backup(target, pages=BACKUP_STEP_PAGES)
            source.execute('COMMIT')
        finally:
            target.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseError('cannot snapshot database %s: %s' % (db_path, exc))
    finally:
        source.close()


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
        return conn.execute('SELECT count(*) FROM secrets WHERE deleted_at IS NULL').fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DatabaseError('%s is not a NEXUS database: %s' % (db_path, exc))
    finally:
        conn.close()
