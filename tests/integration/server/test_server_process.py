"""docs/nexus-behaviour.md §1 and §3: command line, files, WAL behaviour, signals, /health."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.nexus_server.checks import DEFAULT_PASSWORD, db_rows, decrypt_keyring
from tests.nexus_server.harness import SERVER_SCRIPT, login


def tables_in(db_file):
    """Tables visible in ``db_file`` alone: a copy without its -wal beside it."""
    conn = sqlite3.connect(str(db_file))
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def count_secrets(db_file):
    conn = sqlite3.connect(str(db_file))
    try:
        return conn.execute('SELECT count(*) FROM secrets').fetchone()[0]
    except sqlite3.OperationalError:  # no table at all
        return 0
    finally:
        conn.close()


def create_many(url, prefix, n):
    session = requests.Session()
    session.headers['Authorization'] = 'Bearer ' + login(url)
    for i in range(n):
        resp = session.post(url + '/api/v1/secrets', json={'path': '%s/%04d' % (prefix, i), 'value': 'v%d' % i})
        assert resp.status_code == 201, resp.text


def test_help_shows_the_go_binary_defaults():
    out = subprocess.run([sys.executable, str(SERVER_SCRIPT), '-h'], capture_output=True, text=True, check=True).stdout
    for flag in ('-addr', '-storage', '-db'):
        assert flag in out
    assert '":9000"' in out and '"memory"' in out


def test_default_storage_is_memory(raw_server, tmp_path):
    server = raw_server([], cwd=tmp_path / 'mem')
    create_many(server.url, 'm', 3)
    assert not list((tmp_path / 'mem').glob('*.db*'))  # nothing on disk but the keyring
    assert (tmp_path / 'mem' / 'data' / 'keys' / 'master.key').exists()
    server.stop()
    again = raw_server([], cwd=tmp_path / 'mem')
    session = requests.Session()
    session.headers['Authorization'] = 'Bearer ' + login(again.url)
    assert session.get(again.url + '/api/v1/secrets').json() == {'secrets': [], 'total': 0}


def test_sqlite_db_defaults_to_cwd_and_keys_follow_cwd(raw_server, tmp_path):
    cwd, elsewhere = tmp_path / 'cwd', tmp_path / 'elsewhere'
    server = raw_server(['-storage', 'sqlite'], cwd=cwd)
    create_many(server.url, 'd', 2)
    assert server.stop() == 0
    assert count_secrets(cwd / 'nexus.db') == 2
    elsewhere.mkdir()
    server = raw_server(['-storage=sqlite', '-db=%s' % (elsewhere / 'other.db')], cwd=cwd)  # -flag=value form
    create_many(server.url, 'e', 1)
    server.stop()
    assert count_secrets(elsewhere / 'other.db') == 1
    assert not (elsewhere / 'data').exists()  # the keyring is ./data/keys of the working directory
    decrypt_keyring(cwd / 'data' / 'keys', DEFAULT_PASSWORD)


def test_fresh_database_is_4096_bytes_with_tables_in_the_wal(nexus_server_factory, tmp_path):
    server = nexus_server_factory()
    db = server.db_path
    assert db.stat().st_size == 4096
    assert db.with_name('nexus.db-wal').stat().st_size > 0
    assert db.with_name('nexus.db-shm').exists()
    assert db_rows(db, 'PRAGMA journal_mode') == [('wal',)]
    copy = tmp_path / 'copy.db'
    shutil.copy(db, copy)  # nexus.db alone, taken while the server runs
    assert tables_in(copy) == set()
    assert {'secrets', 'secret_versions', 'audit_logs'} <= {r[0] for r in db_rows(db, "SELECT name FROM sqlite_master")}


def test_hot_copy_of_the_db_file_alone_misses_committed_data(nexus_server_factory, tmp_path):
    server = nexus_server_factory()
    create_many(server.url, 'hot', 30)  # well below SQLite's 1000-page auto-checkpoint
    assert db_rows(server.db_path, 'SELECT count(*) FROM secrets') == [(30,)]  # through SQLite: all there
    copy = tmp_path / 'hot-copy.db'
    shutil.copy(server.db_path, copy)
    assert count_secrets(copy) < 30
    server.kill()


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_clean_stop_checkpoints_and_removes_wal(nexus_server_factory, tmp_path, sig):
    server = nexus_server_factory()
    create_many(server.url, 'clean', 50)
    wal, shm = server.db_path.with_name('nexus.db-wal'), server.db_path.with_name('nexus.db-shm')
    assert wal.exists() and shm.exists()
    server.proc.send_signal(sig)
    assert server.proc.wait(35) == 0
    assert not wal.exists() and not shm.exists()
    copy = tmp_path / 'after-stop.db'
    shutil.copy(server.db_path, copy)
    assert count_secrets(copy) == 50  # everything is in nexus.db itself now
    assert 'Shutting down' in server.log_text()


def test_kill_9_leaves_wal_and_shm_and_data_survives(nexus_server_factory, tmp_path):
    server = nexus_server_factory()
    create_many(server.url, 'killed', 30)
    server.kill()
    wal, shm = server.db_path.with_name('nexus.db-wal'), server.db_path.with_name('nexus.db-shm')
    assert wal.exists() and wal.stat().st_size > 0 and shm.exists()
    copy = tmp_path / 'killed-copy.db'
    shutil.copy(server.db_path, copy)
    assert count_secrets(copy) < 30  # the db file alone is behind
    server.start()  # SQLite recovers the WAL on open
    assert server.client().list(prefix='killed/').json()['total'] == 30


def test_graceful_shutdown_finishes_in_flight_requests(nexus_server_factory):
    server = nexus_server_factory(faults={'latency_ms': 2000}, env={'NEXUS_LOG_REQUESTS': '1'})
    token = server.token()
    result = {}

    def slow_request():
        result['resp'] = requests.post(server.url + '/api/v1/secrets', json={'path': 'inflight/a', 'value': 'v'},
                                       headers={'Authorization': 'Bearer ' + token}, timeout=30)

    worker = threading.Thread(target=slow_request)
    worker.start()
    deadline = time.monotonic() + 30
    while 'request start: POST /api/v1/secrets' not in server.log_text():  # inside its injected latency now
        assert time.monotonic() < deadline
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    worker.join(30)
    assert server.proc.wait(35) == 0
    assert result['resp'].status_code == 201
    assert db_rows(server.db_path, "SELECT count(*) FROM secrets WHERE path = 'inflight/a'") == [(1,)]


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_health_unhealthy_is_503(nexus_server_factory, how):
    kwargs = {'faults': {'unhealthy': True}} if how == 'flag' else {'env': {'NEXUS_FAULT_UNHEALTHY': '1'}}
    server = nexus_server_factory(start=False, **kwargs).start(healthy=False)
    resp = requests.get(server.url + '/health')
    assert resp.status_code == 503
    body = resp.json()
    assert body['status'] == 'unhealthy' and body['error'] and set(body) == {'status', 'error', 'timestamp'}
    assert server.client().list().status_code == 200  # the API itself still answers
