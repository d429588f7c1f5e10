"""Snapshots of a live WAL database, and the read-only checks, on real SQLite files."""

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._sqlite import (
    DatabaseError, count_live_secrets, integrity_check, snapshot_database)

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


def test_snapshot_holds_what_only_the_wal_holds(tmp_path):
    live = tmp_path / 'nexus.db'
    conn = open_live(live)
    add_secrets(conn, 0, 50)
    assert os.path.getsize(str(live) + '-wal') > 0
    # A plain copy (nexusctl's way) misses everything: the tables are still in the WAL.
    shutil.copyfile(str(live), str(tmp_path / 'plain-copy.db'))
    with pytest.raises(DatabaseError):
        count_live_secrets(str(tmp_path / 'plain-copy.db'))
    snapshot_database(str(live), str(tmp_path / 'snap.db'))
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 50
    assert integrity_check(str(tmp_path / 'snap.db')) is None
    assert os.stat(str(tmp_path / 'snap.db')).st_mode & 0o777 == 0o600
    conn.close()


def test_snapshot_changes_nothing_beside_a_live_database(tmp_path):
    live_dir = tmp_path / 'live'
    live_dir.mkdir()
    conn = open_live(live_dir / 'nexus.db')
    add_secrets(conn, 0, 20)
    before = {name: (live_dir / name).read_bytes() for name in files(live_dir)}
    snapshot_database(str(live_dir / 'nexus.db'), str(tmp_path / 'snap.db'))
    assert files(live_dir) == ['nexus.db', 'nexus.db-shm', 'nexus.db-wal']
    assert (live_dir / 'nexus.db').read_bytes() == before['nexus.db']
    assert (live_dir / 'nexus.db-wal').read_bytes() == before['nexus.db-wal']
    conn.close()


def test_snapshot_of_a_stopped_database_leaves_no_files_behind(tmp_path):
    live_dir = tmp_path / 'live'
    live_dir.mkdir()
    conn = open_live(live_dir / 'nexus.db')
    add_secrets(conn, 0, 10)
    add_secrets(conn, 10, 3, deleted=True)
    conn.close()  # a clean stop checkpoints and removes -wal/-shm
    assert files(live_dir) == ['nexus.db']
    snapshot_database(str(live_dir / 'nexus.db'), str(tmp_path / 'snap.db'))
    assert files(live_dir) == ['nexus.db']
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 10
    assert files(tmp_path) == ['live', 'snap.db']


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
    snapshot_database(str(live_dir / 'nexus.db'), str(tmp_path / 'snap.db'))
    assert count_live_secrets(str(tmp_path / 'snap.db')) == 30


def test_snapshot_while_another_process_writes(tmp_path):
    """Every row committed before the snapshot started is in it; the copy is intact."""
    live = tmp_path / 'nexus.db'
    conn = open_live(live)
    add_secrets(conn, 0, 2000)
    stop = threading.Event()
    written = []

    def writer():
        i = 100000
        while not stop.is_set():
            add_secrets(conn, i, 1)
            written.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 20:
            pass
        committed_before = 2000 + len(written)
        snapshot_database(str(live), str(tmp_path / 'snap.db'))
    finally:
        stop.set()
        thread.join()
    got = count_live_secrets(str(tmp_path / 'snap.db'))
    assert committed_before <= got <= 2000 + len(written)
    assert integrity_check(str(tmp_path / 'snap.db')) is None
    conn.close()


def test_snapshot_refuses_an_existing_destination(tmp_path):
    conn = open_live(tmp_path / 'nexus.db')
    (tmp_path / 'snap.db').write_text('keep')
    with pytest.raises(FileExistsError):
        snapshot_database(str(tmp_path / 'nexus.db'), str(tmp_path / 'snap.db'))
    assert (tmp_path / 'snap.db').read_text() == 'keep'
    conn.close()


def test_snapshot_of_missing_or_bogus_database(tmp_path):
    with pytest.raises(DatabaseError, match='does not exist'):
        snapshot_database(str(tmp_path / 'missing.db'), str(tmp_path / 'a.db'))
    (tmp_path / 'bogus.db').write_bytes(b'not sqlite' * 1000)
    with pytest.raises(DatabaseError, match='not a database'):
        snapshot_database(str(tmp_path / 'bogus.db'), str(tmp_path / 'b.db'))


def test_integrity_check_finds_corruption_without_creating_files(tmp_path):
    conn = open_live(tmp_path / 'live.db')
    add_secrets(conn, 0, 500)
    snapshot_database(str(tmp_path / 'live.db'), str(tmp_path / 'snap.db'))
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
    snapshot_database(str(tmp_path / 'nexus.db'), str(tmp_path / 'snap.db'))
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
    from ansible_collections.nexus.secrets.plugins.module_utils._sqlite import snapshot_database
    src, dst, megabytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conn = sqlite3.connect(src, isolation_level=None)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE secrets (id INTEGER PRIMARY KEY, value BLOB, deleted_at TEXT)')
    blob = os.urandom(64 * 1024)
    conn.execute('BEGIN')
    for _ in range(megabytes * 16):
        conn.execute('INSERT INTO secrets (value) VALUES (?)', (blob,))
    conn.execute('COMMIT')
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    snapshot_database(src, dst)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, os.path.getsize(dst))
''')


def test_snapshot_memory_is_bounded(tmp_path):
    proc = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, str(tmp_path / 'big.db'), str(tmp_path / 'snap.db'),
                           '200'], capture_output=True, text=True, check=True,
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
