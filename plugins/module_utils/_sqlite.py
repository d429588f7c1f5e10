# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent snapshot of NEXUS's live SQLite database, and read-only checks of a copy.

nexusctl copies ``nexus.db`` as a plain file and so misses every transaction still in the WAL
(docs/nexus-behaviour.md §3). A snapshot here is what one read transaction sees: the file plus the committed WAL
frames. Private to this collection.

Every database read here may come from someone else (a backup, or a data directory the service
account writes), so before any other SQL runs, :func:`check_schema` refuses schema objects NEXUS
never creates (views, triggers, virtual tables, expression or partial indexes, generated columns,
CHECK constraints, unknown tables or indexes): SQL over the database then runs no code the
database brought along. Every statement also runs under a deadline (a progress handler), so no
database keeps a module busy for ever.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time

from urllib.parse import quote

from ansible_collections.nexus.secrets.plugins.module_utils._layout import DB_NAME, WAL_SUFFIX

# Pages copied per backup step: bounded memory, few round trips (16 MiB at 4 KiB pages).
BACKUP_STEP_PAGES = 4096
BUSY_TIMEOUT_S = 30

# Deadline for the SQL run over one database: a base plus an allowance per GiB of file (a plain
# NEXUS database of 1 GiB passes integrity_check in well under a minute); checked every
# PROGRESS_STEPS virtual-machine steps.
DEADLINE_BASE_S = 300
DEADLINE_S_PER_GIB = 300
PROGRESS_STEPS = 20000

# What the NEXUS server creates (docs/nexus-behaviour.md §3), and nothing else: its tables, its
# plain one-column indexes, the indexes SQLite makes for PRIMARY KEY/UNIQUE, and SQLite's own
# bookkeeping tables.
NEXUS_TABLES = ('secrets', 'secret_versions', 'audit_logs')
NEXUS_INDEXES = {
    'idx_secrets_path': ('secrets', ('path',)),
    'idx_secrets_deleted_at': ('secrets', ('deleted_at',)),
    'idx_secret_versions_secret_id': ('secret_versions', ('secret_id',)),
    'idx_audit_logs_timestamp': ('audit_logs', ('timestamp',)),
    'idx_audit_logs_user': ('audit_logs', ('user',)),
    'idx_audit_logs_action': ('audit_logs', ('action',)),
    'idx_audit_logs_secret_path': ('audit_logs', ('secret_path',)),
}
INTERNAL_TABLES = ('sqlite_sequence', 'sqlite_stat1', 'sqlite_stat2', 'sqlite_stat3', 'sqlite_stat4')
AUTOINDEX_RE = re.compile(r'^sqlite_autoindex_(secrets|secret_versions|audit_logs)_[0-9]{1,3}\Z')
PLAIN_COLLATIONS = ('BINARY', 'NOCASE', 'RTRIM')
# Words that put an expression into a table definition (CHECK constraints, generated columns).
_EXPRESSION_WORDS = ('CHECK', 'GENERATED', 'AS')
_QUOTED_RE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]")
_WORD_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_$]*')
MAX_SCHEMA_OBJECTS = 200


class DatabaseError(sqlite3.DatabaseError):
    """A user-facing reason why a database cannot be snapshotted or read."""


class SchemaError(DatabaseError):
    """The database holds schema objects NEXUS never creates; ``detail`` names the first one."""

    def __init__(self, db_path, detail):
        DatabaseError.__init__(self, '%s is not a NEXUS database: %s' % (db_path, detail))
        self.detail = detail


class DatabaseTimeout(DatabaseError):
    """SQL over the database ran past its deadline and was stopped."""


class Deadline(object):
    """A progress handler that stops every statement of one connection past ``seconds`` from now."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False

    def __call__(self):
        if time.monotonic() > self.end:
            self.expired = True
            return 1
        return 0


def deadline_for(db_path):
    """The seconds allowed for all SQL over ``db_path`` (a base plus an allowance for its size)."""
    try:
        size = os.path.getsize(db_path)
        if os.path.isfile(db_path + WAL_SUFFIX):
            size += os.path.getsize(db_path + WAL_SUFFIX)
    except OSError:
        size = 0
    return int(DEADLINE_BASE_S + DEADLINE_S_PER_GIB * size / 1024 ** 3)


def guard(conn, seconds):
    """Harden ``conn`` for an untrusted database and bound its statements; return the Deadline."""
    for pragma in ('PRAGMA trusted_schema=OFF', 'PRAGMA cell_size_check=ON'):
        try:
            conn.execute(pragma)
        except sqlite3.DatabaseError:
            pass  # an SQLite without the pragma: the schema check still keeps foreign code out
    deadline = Deadline(seconds)
    conn.set_progress_handler(deadline, PROGRESS_STEPS)
    return deadline


def run_bounded(conn, deadline, sql, what, db_path):
    """``fetchall()`` of ``sql``; a statement stopped by ``deadline`` becomes DatabaseTimeout."""
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if deadline is not None and deadline.expired:
            raise DatabaseTimeout('%s in %s did not finish within %d s and was stopped (a NEXUS database of '
                                  'this size needs far less: a hostile or damaged database?)'
                                  % (what, db_path, deadline.seconds))
        raise


def _pragma(conn, deadline, pragma, name, db_path):
    """A schema pragma about ``name`` (one of the names this module allows: no quoting issue)."""
    return run_bounded(conn, deadline, 'PRAGMA %s("%s")' % (pragma, name), 'reading the schema', db_path)


def _words(sql):
    """The upper-cased bare words of an SQL text, quoted names and strings left out."""
    return set(word.upper() for word in _WORD_RE.findall(_QUOTED_RE.sub(' ', sql or '')))


def _check_table(conn, deadline, db_path, name, sql):
    text = (sql or '').lstrip()
    if not text.upper().startswith('CREATE TABLE'):
        raise SchemaError(db_path, 'table %r is a virtual table (NEXUS creates only plain tables)' % name)
    if name in INTERNAL_TABLES:
        return
    found = sorted(_words(text) & set(_EXPRESSION_WORDS))
    if found:
        raise SchemaError(db_path, 'table %r carries expressions (%s): NEXUS creates no CHECK constraints or '
                          'generated columns' % (name, ', '.join(found)))
    hidden = [row[1] for row in _pragma(conn, deadline, 'table_xinfo', name, db_path) if row[6]]
    if hidden:
        raise SchemaError(db_path, 'table %r has generated or hidden columns (%s)' % (name, ', '.join(hidden)))


def _check_index(conn, deadline, db_path, name, table, sql):
    if AUTOINDEX_RE.match(name):
        if sql is not None or AUTOINDEX_RE.match(name).group(1) != table:
            raise SchemaError(db_path, 'index %r is not an index SQLite makes for a key' % name)
        return
    expected = NEXUS_INDEXES.get(name)
    if expected is None:
        raise SchemaError(db_path, 'it holds the index %r on %r, which NEXUS never creates' % (name, table))
    if table != expected[0]:
        raise SchemaError(db_path, 'index %r is on table %r, NEXUS puts it on %r' % (name, table, expected[0]))
    listed = [row for row in _pragma(conn, deadline, 'index_list', table, db_path) if row[1] == name]
    if not listed or listed[0][4]:
        raise SchemaError(db_path, 'index %r is a partial index (NEXUS creates only plain column indexes)' % name)
    keys = [row for row in _pragma(conn, deadline, 'index_xinfo', name, db_path) if row[5]]
    if any(row[1] < 0 for row in keys):
        raise SchemaError(db_path, 'index %r indexes an expression (NEXUS creates only plain column indexes)'
                          % name)
    if tuple(row[2] for row in keys) != expected[1] or any(str(row[4]).upper() not in PLAIN_COLLATIONS
                                                           for row in keys):
        raise SchemaError(db_path, 'index %r is not the plain index on %s(%s) NEXUS creates'
                          % (name, expected[0], ', '.join(expected[1])))


def check_schema_of(conn, db_path, deadline=None):
    """Raise SchemaError unless ``conn``'s schema holds only what NEXUS creates; return the table names.

    Runs nothing but reads of ``sqlite_master`` and pragmas about it, so no object of the database
    (an index expression, a view, a trigger) is evaluated. Missing tables are the caller's concern.
    """
    query = 'SELECT type, name, tbl_name, sql FROM sqlite_master LIMIT %d' % (MAX_SCHEMA_OBJECTS + 1)
    rows = run_bounded(conn, deadline, query, 'reading the schema', db_path)
    if len(rows) > MAX_SCHEMA_OBJECTS:
        raise SchemaError(db_path, 'it holds more than %d schema objects (NEXUS creates %d)'
                          % (MAX_SCHEMA_OBJECTS, len(NEXUS_TABLES) + len(NEXUS_INDEXES) + 5))
    tables = []
    for kind, name, table, sql in rows:
        if kind == 'table':
            if name not in NEXUS_TABLES and name not in INTERNAL_TABLES:
                raise SchemaError(db_path, 'it holds the table %r, which NEXUS never creates' % name)
            _check_table(conn, deadline, db_path, name, sql)
            tables.append(name)
        elif kind == 'index':
            _check_index(conn, deadline, db_path, name, table, sql)
        elif kind in ('view', 'trigger'):
            raise SchemaError(db_path, 'it holds the %s %r, which NEXUS never creates (NEXUS creates only '
                              'tables and plain indexes)' % (kind, name))
        else:
            raise SchemaError(db_path, 'it holds the schema object %r of type %r' % (name, kind))
    return tables


@contextlib.contextmanager
def _checked(db_path):
    """``(connection, deadline, table names)`` of ``db_path`` opened read-only, under a deadline, after
    :func:`check_schema_of`; the connection is closed afterwards."""
    try:
        conn = _open_read_only(db_path)
    except sqlite3.Error as exc:
        raise DatabaseError('cannot open %s: %s' % (db_path, exc))
    try:
        deadline = guard(conn, deadline_for(db_path))
        try:
            tables = check_schema_of(conn, db_path, deadline)
        except DatabaseError:
            raise
        except sqlite3.DatabaseError as exc:
            raise DatabaseError('%s is not a readable SQLite database: %s' % (db_path, exc))
        yield conn, deadline, tables
    finally:
        conn.close()


def check_schema(db_path):
    """Open ``db_path`` read-only and :func:`check_schema_of` it; return the table names."""
    with _checked(db_path) as (dummy, dummy_deadline, tables):
        return tables


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
    if os.path.exists(db_path + WAL_SUFFIX):
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
    if os.path.exists(db_path + WAL_SUFFIX):
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
        except sqlite3.DatabaseError as exc:
            raise DatabaseError('cannot snapshot database %s: %s' % (db_path, exc))
        # Before any copy or query: a foreign schema is refused, and every statement has a deadline.
        deadline = _check_live_schema(source, db_path)
        try:
            size = _file_size_if_it_holds_the_snapshot(source, db_path) if stream else None
            if size is None:
                path = os.path.join(scratch_dir, DB_NAME)
                _online_backup(source, path)
                size = os.path.getsize(path)
            else:
                path = db_path
        except sqlite3.DatabaseError as exc:
            raise DatabaseError('cannot snapshot database %s: %s' % (db_path, exc))
        secrets = _count_live(source, db_path, deadline)
        source.set_progress_handler(None, 0)
        yield Snapshot(path, size, secrets, streamed=path == db_path)
    finally:
        source.close()


def _check_live_schema(source, db_path):
    """Inside the pinned read transaction: guard ``source`` and refuse a foreign schema; the Deadline."""
    deadline = guard(source, deadline_for(db_path))
    try:
        check_schema_of(source, db_path, deadline)
    except DatabaseError:
        raise
    except sqlite3.DatabaseError as exc:
        raise DatabaseError('cannot read the schema of %s: %s' % (db_path, exc))
    return deadline


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
            if os.path.getsize(db_path + WAL_SUFFIX) != 0:
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


CHECKS = {'quick': 'quick_check', 'full': 'integrity_check'}


def integrity_check(db_path, depth='full'):
    """None when ``PRAGMA integrity_check`` (``depth='full'``) or ``PRAGMA quick_check`` (``'quick'``)
    says 'ok', else the problems it reports.

    quick_check reads every page and checks the b-trees' structure, records and constraints; it skips
    only the comparison of each index's entries with the table rows, which is most of integrity_check's
    time on a database with large indexes (the audit log's).

    Raises DatabaseTimeout past the deadline. Run :func:`check_schema` first on a database from
    elsewhere: integrity_check evaluates index expressions and CHECK constraints.
    """
    try:
        conn = _open_read_only(db_path)
    except sqlite3.Error as exc:
        return 'cannot open %s: %s' % (db_path, exc)
    try:
        deadline = guard(conn, deadline_for(db_path))
        pragma = 'PRAGMA ' + CHECKS[depth]
        rows = [row[0] for row in run_bounded(conn, deadline, pragma, pragma, db_path)]
    except DatabaseTimeout:
        raise
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    if rows == ['ok']:
        return None
    return '; '.join(str(row) for row in rows[:20])


def count_live_secrets(db_path):
    """The number of secrets not soft-deleted (after :func:`check_schema_of`, under a deadline)."""
    with _checked(db_path) as (conn, deadline, dummy):
        return _count_live(conn, db_path, deadline)


def _count_live(conn, db_path, deadline=None):
    try:
        return run_bounded(conn, deadline, 'SELECT count(*) FROM secrets WHERE deleted_at IS NULL',
                           'counting the secrets', db_path)[0][0]
    except DatabaseTimeout:
        raise
    except sqlite3.DatabaseError as exc:
        raise DatabaseError('%s is not a NEXUS database: %s' % (db_path, exc))
