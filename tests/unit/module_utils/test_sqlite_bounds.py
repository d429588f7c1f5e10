"""SQL over databases from elsewhere: NEXUS's schema only (checked before anything evaluates it),
and every statement under a deadline.

The allowed schema is exactly what the reference server creates (its SCHEMA, taken verbatim from
the real server) and what the real nexusctl fixture holds; both must keep passing.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _archive, _backup, _sqlite, _verify
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeReader
from tests.integration.restore import backups as b
from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, LIVE_SECRETS, NEXUSCTL_BACKUP

RECURSIVE = 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) '


def nexus_db(path, extra=(), drop=(), rows=3):
    """A reference-schema database with ``rows`` secrets, then ``drop`` and ``extra`` statements run."""
    b.make_db(path, live=rows, deleted=0)
    conn = sqlite3.connect(str(path), isolation_level=None)
    for statement in tuple(drop) + tuple(extra):
        conn.execute(statement)
    conn.close()
    return str(path)


HOSTILE = {
    # case: (drop, extra, pinned detail)
    'expression-index': ((), ['CREATE INDEX idx_slow ON secrets(length(hex(value)))'],
                         "it holds the index 'idx_slow' on 'secrets', which NEXUS never creates"),
    'expression-index-under-a-nexus-name': (['DROP INDEX idx_secrets_path'],
                                            ['CREATE INDEX idx_secrets_path ON secrets(lower(path))'],
                                            "index 'idx_secrets_path' indexes an expression"),
    'partial-index-under-a-nexus-name': (['DROP INDEX idx_secrets_deleted_at'],
                                         ['CREATE INDEX idx_secrets_deleted_at ON secrets(deleted_at) '
                                          'WHERE length(hex(value)) > 0'],
                                         "index 'idx_secrets_deleted_at' is a partial index"),
    'nexus-index-on-other-columns': (['DROP INDEX idx_audit_logs_user'],
                                     ['CREATE INDEX idx_audit_logs_user ON audit_logs(user, metadata)'],
                                     "index 'idx_audit_logs_user' is not the plain index on audit_logs(user)"),
    'nexus-index-on-another-table': (['DROP INDEX idx_secrets_path'],
                                     ['CREATE INDEX idx_secrets_path ON audit_logs(secret_path)'],
                                     "index 'idx_secrets_path' is on table 'audit_logs', NEXUS puts it on "
                                     "'secrets'"),
    'recursive-view-named-secrets': (['DROP TABLE secret_versions', 'DROP TABLE secrets'],
                                     ['CREATE VIEW secrets AS ' + RECURSIVE + 'SELECT n AS id, NULL AS deleted_at '
                                      'FROM r'],
                                     "it holds the view 'secrets', which NEXUS never creates"),
    'trigger': ((), ["CREATE TRIGGER t_audit AFTER INSERT ON audit_logs BEGIN DELETE FROM secrets; END"],
                "it holds the trigger 't_audit', which NEXUS never creates"),
    'extra-table': ((), ['CREATE TABLE stash (blob BLOB)'], "it holds the table 'stash', which NEXUS never creates"),
    'virtual-table': (['DROP TABLE secret_versions', 'DROP TABLE secrets'],
                      ['CREATE VIRTUAL TABLE secrets USING fts5(id, path, value, deleted_at)'],
                      "table 'secrets' is a virtual table"),
    'check-constraint': (['DROP TABLE audit_logs'],
                         ['CREATE TABLE audit_logs (id TEXT PRIMARY KEY, signature TEXT CHECK '
                          '(length(hex(signature)) >= 0))'],
                         "table 'audit_logs' carries expressions (CHECK)"),
    'generated-column': (['DROP TABLE audit_logs'],
                         ['CREATE TABLE audit_logs (id TEXT PRIMARY KEY, signature TEXT, '
                          'slow TEXT AS (hex(signature)))'],
                         "table 'audit_logs' carries expressions (AS)"),
}


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_schema_objects_nexus_never_creates_are_refused(case, tmp_path):
    drop, extra, detail = HOSTILE[case]
    db = nexus_db(tmp_path / 'nexus.db', extra, drop)
    with pytest.raises(_sqlite.SchemaError) as caught:
        _sqlite.check_schema(db)
    assert detail in caught.value.detail, caught.value.detail
    assert 'is not a NEXUS database' in str(caught.value)
    with pytest.raises(_sqlite.SchemaError):  # counting checks the schema first, too
        _sqlite.count_live_secrets(db)
    assert sorted(os.listdir(str(tmp_path))) == ['nexus.db']  # read-only: no -wal/-shm created


def test_quoted_words_are_not_taken_for_expressions(tmp_path):
    """'check' or 'as' inside a string or a quoted name is not a CHECK constraint."""
    db = nexus_db(tmp_path / 'nexus.db', drop=['DROP TABLE audit_logs'],
                  extra=['CREATE TABLE audit_logs (id TEXT PRIMARY KEY, "check" TEXT DEFAULT \'as check\')'])
    assert 'audit_logs' in _sqlite.check_schema(db)


def test_the_reference_schema_and_the_nexusctl_fixture_pass(tmp_path):
    db = nexus_db(tmp_path / 'nexus.db')
    assert sorted(_sqlite.check_schema(db)) == ['audit_logs', 'secret_versions', 'secrets']
    staging = tmp_path / 'fixture'
    staging.mkdir()
    with open(NEXUSCTL_BACKUP, 'rb') as src:
        _archive.extract_archive(EnvelopeReader(src, BACKUP_PASSWORD), str(staging))
    fixture_db = str(staging / 'nexus.db')
    assert sorted(_sqlite.check_schema(fixture_db)) == ['audit_logs', 'secret_versions', 'secrets']
    assert _sqlite.count_live_secrets(fixture_db) == LIVE_SECRETS
    assert _sqlite.integrity_check(fixture_db) is None


def test_sqlite_bookkeeping_tables_are_allowed(tmp_path):
    db = nexus_db(tmp_path / 'nexus.db', extra=['ANALYZE'])
    assert 'sqlite_stat1' in _sqlite.check_schema(db)


def test_schema_check_runs_before_integrity_check(tmp_path, monkeypatch):
    """A hostile index must never be evaluated: integrity_check is not even reached."""
    calls = []
    real = _sqlite.integrity_check
    monkeypatch.setattr(_sqlite, 'integrity_check', lambda path, depth='full': calls.append(path) or real(path, depth))
    source = tmp_path / 'source'
    b.make_keyring(source / 'data' / 'keys', 'key-password')
    nexus_db(source / 'nexus.db', HOSTILE['expression-index'][1])
    backup = b.make_backup(tmp_path / 'hostile.enc', 'backup-password', source)
    staging = tmp_path / 'staging'
    staging.mkdir(mode=0o700)
    with pytest.raises(_verify.BackupInvalid, match="is not a NEXUS database: it holds the index 'idx_slow'"):
        _verify.stage_backup(str(backup), 'backup-password', str(staging))
    assert calls == []
    good = b.make_backup(tmp_path / 'good.enc', 'backup-password', b.make_data_dir(tmp_path / 'good'))
    shutil.rmtree(str(staging))
    staging.mkdir(mode=0o700)
    assert _verify.stage_backup(str(good), 'backup-password', str(staging)).integrity == 'ok'
    assert len(calls) == 1


# --- deadlines --------------------------------------------------------------------------------------

def test_a_runaway_statement_is_stopped_at_the_deadline(tmp_path):
    conn = sqlite3.connect(':memory:')
    deadline = _sqlite.guard(conn, 0)  # expired from the start: stopped at the first progress check
    with pytest.raises(_sqlite.DatabaseTimeout, match='did not finish within 0 s and was stopped'):
        _sqlite.run_bounded(conn, deadline, RECURSIVE + 'SELECT count(*) FROM r', 'counting', 'x.db')
    conn.close()


@pytest.fixture
def no_time(monkeypatch):
    """Every bounded statement longer than PROGRESS_STEPS steps runs past its deadline."""
    monkeypatch.setattr(_sqlite, 'DEADLINE_BASE_S', 0)
    monkeypatch.setattr(_sqlite, 'DEADLINE_S_PER_GIB', 0)


def test_integrity_check_and_counting_are_bounded(tmp_path, no_time):
    db = nexus_db(tmp_path / 'nexus.db', rows=20000)
    with pytest.raises(_sqlite.DatabaseTimeout, match='PRAGMA integrity_check in .* did not finish'):
        _sqlite.integrity_check(db)
    with pytest.raises(_sqlite.DatabaseTimeout, match='counting the secrets in .* did not finish'):
        _sqlite.count_live_secrets(db)


def test_staging_reports_the_deadline_clearly(tmp_path, no_time):
    source = tmp_path / 'source'
    b.make_keyring(source / 'data' / 'keys', 'key-password')
    nexus_db(source / 'nexus.db', rows=20000)
    backup = b.make_backup(tmp_path / 'big.enc', 'backup-password', source)
    staging = tmp_path / 'staging'
    staging.mkdir(mode=0o700)
    with pytest.raises(_verify.BackupInvalid, match=r'nexus.db in the backup: PRAGMA integrity_check in .* did '
                                                    r'not finish within 0 s'):
        _verify.stage_backup(str(backup), 'backup-password', str(staging))


def test_a_backup_stopped_at_the_deadline_leaves_nothing_and_releases_dest(tmp_path, no_time, monkeypatch):
    data = b.make_data_dir(tmp_path / 'data')
    nexus_db(data / 'nexus.db.big', rows=20000)
    os.replace(str(data / 'nexus.db.big'), str(data / 'nexus.db'))
    dest = tmp_path / 'dest'
    with pytest.raises(_backup.BackupError, match='counting the secrets in .* did not finish within 0 s'):
        _backup.create_backup(str(data / 'nexus.db'), str(data / 'data' / 'keys'), str(dest), 'backup-password')
    assert os.listdir(str(dest)) == []
    monkeypatch.setattr(_sqlite, 'DEADLINE_BASE_S', 300)
    out = _backup.create_backup(str(data / 'nexus.db'), str(data / 'data' / 'keys'), str(dest), 'backup-password')
    assert out['secrets'] == 20000


def test_a_backup_of_a_live_database_with_a_recursive_secrets_view_is_refused_at_once(tmp_path):
    data = b.make_data_dir(tmp_path / 'data')
    drop, extra, detail = HOSTILE['recursive-view-named-secrets']
    nexus_db(data / 'hostile.db', extra, drop)
    os.replace(str(data / 'hostile.db'), str(data / 'nexus.db'))
    dest = tmp_path / 'dest'
    for dummy in range(2):  # the second run is not told "another backup is running": the lock was released
        with pytest.raises(_backup.BackupError, match=detail):
            _backup.create_backup(str(data / 'nexus.db'), str(data / 'data' / 'keys'), str(dest), 'pw')
    assert os.listdir(str(dest)) == []
