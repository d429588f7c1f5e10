"""SQLite storage: the real server's schema, WAL mode, soft delete, unescaped LIKE prefix (docs/nexus-behaviour.md §3).

All writes go through one connection guarded by a lock (never "database is locked"); reads use a
small pool of read-only connections, which WAL mode lets run beside a write. Updates read through the
pool and write through the writer, so concurrent PUTs on one secret can lose versions exactly like the
real server (a read-modify-write race).
"""

from __future__ import annotations

import queue
import sqlite3
import threading

from . import timefmt
from .model import AuditEntry, Secret, StorageError, Version, metadata_from_db, metadata_to_db, new_id

# Verbatim from the real server's database (sqlite3 .schema of a nexusctl backup).
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS secrets (
\t\tid TEXT PRIMARY KEY,
\t\tpath TEXT UNIQUE NOT NULL,
\t\tvalue BLOB NOT NULL,
\t\tmetadata TEXT,
\t\tversion INTEGER NOT NULL DEFAULT 1,
\t\tcreated_at DATETIME NOT NULL,
\t\tcreated_by TEXT NOT NULL,
\t\tupdated_at DATETIME NOT NULL,
\t\tupdated_by TEXT NOT NULL,
\t\tdeleted_at DATETIME,
\t\trotation_enabled BOOLEAN DEFAULT 0,
\t\trotation_interval INTEGER,
\t\trotation_provider TEXT,
\t\tnext_rotation DATETIME
\t)""",
    'CREATE INDEX IF NOT EXISTS idx_secrets_path ON secrets(path)',
    'CREATE INDEX IF NOT EXISTS idx_secrets_deleted_at ON secrets(deleted_at)',
    """CREATE TABLE IF NOT EXISTS secret_versions (
\t\tid TEXT PRIMARY KEY,
\t\tsecret_id TEXT NOT NULL,
\t\tversion INTEGER NOT NULL,
\t\tvalue BLOB NOT NULL,
\t\tcreated_at DATETIME NOT NULL,
\t\tcreated_by TEXT NOT NULL,
\t\tFOREIGN KEY (secret_id) REFERENCES secrets(id) ON DELETE CASCADE,
\t\tUNIQUE(secret_id, version)
\t)""",
    'CREATE INDEX IF NOT EXISTS idx_secret_versions_secret_id ON secret_versions(secret_id)',
    """CREATE TABLE IF NOT EXISTS audit_logs (
\t\tid TEXT PRIMARY KEY,
\t\ttimestamp DATETIME NOT NULL,
\t\taction TEXT NOT NULL,
\t\tuser TEXT NOT NULL,
\t\tsecret_id TEXT,
\t\tsecret_path TEXT,
\t\tip_address TEXT,
\t\tuser_agent TEXT,
\t\tsuccess BOOLEAN NOT NULL,
\t\terror TEXT,
\t\tmetadata TEXT,
\t\tsignature TEXT NOT NULL
\t)""",
    'CREATE INDEX IF NOT EXISTS idx_audit_logs_timestamp ON audit_logs(timestamp)',
    'CREATE INDEX IF NOT EXISTS idx_audit_logs_user ON audit_logs(user)',
    'CREATE INDEX IF NOT EXISTS idx_audit_logs_action ON audit_logs(action)',
    'CREATE INDEX IF NOT EXISTS idx_audit_logs_secret_path ON audit_logs(secret_path)',
]

_SECRET_COLS = 'id, path, value, metadata, version, created_at, created_by, updated_at, updated_by, deleted_at'


def _secret(row):
    return Secret(id=row[0], path=row[1], value=bytes(row[2]), metadata=metadata_from_db(row[3]),
                  version=row[4], created_at=timefmt.parse(row[5]), created_by=row[6],
                  updated_at=timefmt.parse(row[7]), updated_by=row[8],
                  deleted_at=timefmt.parse(row[9]) if row[9] else None)


class SQLiteStorage:
    name = 'sqlite'

    READERS = 4

    def __init__(self, db_path):
        self.db_path = str(db_path)
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._conn.execute('PRAGMA journal_mode = WAL')
        with self._lock:
            for stmt in SCHEMA:
                self._conn.execute(stmt)
        self._readers = queue.LifoQueue()
        self._all_readers = []
        self._readers_lock = threading.Lock()
        self._closed = False

    def _connect(self):
        conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        conn.execute('PRAGMA busy_timeout = 5000')
        conn.execute('PRAGMA foreign_keys = ON')
        # The WAL is the durable log; an fsync per audit row would make exports crawl.
        conn.execute('PRAGMA synchronous = NORMAL')
        return conn

    def _reader(self):
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            pass
        with self._readers_lock:
            if self._closed:
                raise StorageError('database is closed')
            if len(self._all_readers) < self.READERS:
                conn = self._connect()
                conn.execute('PRAGMA query_only = ON')
                self._all_readers.append(conn)
                return conn
        return self._readers.get(timeout=30)

    # -- helpers --------------------------------------------------------------------------------
    def _tx(self, statements):
        """Run statements in one transaction; return the row count of the last one."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute('BEGIN IMMEDIATE')
            rowcount = 0
            try:
                for sql, args in statements:
                    rowcount = cur.execute(sql, args).rowcount
                cur.execute('COMMIT')
            except BaseException:
                cur.execute('ROLLBACK')
                raise
            return rowcount

    def _query(self, sql, args=()):
        conn = self._reader()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            self._readers.put(conn)

    # -- secrets --------------------------------------------------------------------------------
    def create(self, secret):
        ts = timefmt.sqlite_text(secret.created_at)
        try:
            self._tx([
                ('INSERT INTO secrets (id, path, value, metadata, version, created_at, created_by, '
                 'updated_at, updated_by, rotation_enabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)',
                 (secret.id, secret.path, secret.value, metadata_to_db(secret.metadata), secret.version,
                  ts, secret.created_by, timefmt.sqlite_text(secret.updated_at), secret.updated_by)),
                ('INSERT INTO secret_versions (id, secret_id, version, value, created_at, created_by) '
                 'VALUES (?, ?, ?, ?, ?, ?)',
                 (new_id(), secret.id, secret.version, secret.value, ts, secret.created_by)),
            ])
        except sqlite3.Error as exc:  # UNIQUE(path) included: the real server does not map it
            raise StorageError(str(exc)) from exc
        return secret

    def get(self, path):
        rows = self._query('SELECT %s FROM secrets WHERE path = ? AND deleted_at IS NULL' % _SECRET_COLS,
                           (path,))
        return _secret(rows[0]) if rows else None

    def save_version(self, secret, expected_version):
        """Write ``secret`` (already bumped to a new version) and its version row."""
        try:
            self._tx([
                ('UPDATE secrets SET value = ?, metadata = ?, version = ?, updated_at = ?, updated_by = ? '
                 'WHERE id = ? AND deleted_at IS NULL',
                 (secret.value, metadata_to_db(secret.metadata), secret.version,
                  timefmt.sqlite_text(secret.updated_at), secret.updated_by, secret.id)),
                ('INSERT OR REPLACE INTO secret_versions (id, secret_id, version, value, created_at, created_by) '
                 'VALUES (?, ?, ?, ?, ?, ?)',
                 (new_id(), secret.id, secret.version, secret.value, timefmt.sqlite_text(secret.updated_at),
                  secret.updated_by)),
            ])
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
        return secret

    def delete(self, path, when, user):
        try:
            changed = self._tx([('UPDATE secrets SET deleted_at = ? WHERE path = ? AND deleted_at IS NULL',
                                 (timefmt.sqlite_text(when), path))])
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
        return changed > 0

    def list(self, prefix=None):
        sql = 'SELECT %s FROM secrets WHERE deleted_at IS NULL' % _SECRET_COLS
        args = ()
        if prefix:
            sql += ' AND path LIKE ?'
            args = (prefix + '%',)  # unescaped on purpose: %/_ are wildcards, ASCII case-insensitive
        return [_secret(r) for r in self._query(sql + ' ORDER BY path', args)]

    def versions(self, secret_id):
        rows = self._query('SELECT id, secret_id, version, value, created_at, created_by FROM secret_versions '
                           'WHERE secret_id = ? ORDER BY version DESC', (secret_id,))
        return [Version(r[0], r[1], r[2], bytes(r[3]), timefmt.parse(r[4]), r[5]) for r in rows]

    # -- audit ----------------------------------------------------------------------------------
    def add_audits(self, entries):
        sql = ('INSERT INTO audit_logs (id, timestamp, action, user, secret_id, secret_path, ip_address, '
               'user_agent, success, error, metadata, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        self._tx([(sql, (e.id, timefmt.sqlite_text(e.timestamp), e.action, e.user, e.secret_id, e.secret_path,
                         e.ip_address, e.user_agent, 1 if e.success else 0, e.error, metadata_to_db(e.metadata),
                         e.signature)) for e in entries])

    def audit(self, limit=None, action=None):
        sql = ('SELECT id, timestamp, action, user, secret_id, secret_path, ip_address, user_agent, success, '
               'error, metadata, signature FROM audit_logs')
        args = []
        if action:
            sql += ' WHERE action = ?'
            args.append(action)
        sql += ' ORDER BY timestamp DESC'
        if limit:
            sql += ' LIMIT ?'
            args.append(int(limit))
        rows = self._query(sql, args)
        return [AuditEntry(id=r[0], timestamp=timefmt.parse(r[1]), action=r[2], user=r[3], secret_id=r[4],
                           secret_path=r[5], ip_address=r[6] or '', user_agent=r[7] or '', success=bool(r[8]),
                           error=r[9], metadata=metadata_from_db(r[10]), signature=r[11]) for r in rows]

    # -- lifecycle ------------------------------------------------------------------------------
    def ping(self):
        if self._closed:
            raise StorageError('database is closed')
        self._query('SELECT 1')

    def close(self):
        """Close the readers, then checkpoint the WAL and close the writer: ``-wal``/``-shm`` disappear."""
        with self._readers_lock:
            if self._closed:
                return
            self._closed = True
            readers, self._all_readers = self._all_readers, []
        for conn in readers:
            conn.close()
        with self._lock:
            try:
                self._conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
            finally:
                self._conn.close()
