"""Hot backups: writers create secrets through the API while nexus_backup runs.

Each backup must hold every secret whose create returned 201 before that backup began, and its
database must pass PRAGMA integrity_check.
"""

import os
import sqlite3
import threading
import time

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._archive import extract_archive
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeReader
from ansible_collections.nexus.secrets.plugins.module_utils._keyring import keyring_unlocks
from ansible_collections.nexus.secrets.plugins.module_utils._sqlite import integrity_check

from tests.helpers.ansible import run_module
from tests.nexus_server.harness import ApiClient

PASSWORD = 'hot-backup-password'
WRITERS = 3
BACKUPS = 3


def live_paths(db_path):
    conn = sqlite3.connect('file:%s?mode=ro' % db_path, uri=True)
    try:
        return {row[0] for row in conn.execute('SELECT path FROM secrets WHERE deleted_at IS NULL')}
    finally:
        conn.close()


@pytest.mark.slow
def test_backups_while_writers_create_secrets(nexus_server, tmp_path):
    token = nexus_server.client().session.headers['Authorization'].split()[1]
    done = []          # (monotonic time the 201 arrived, path)
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def writer(n):
        client = ApiClient(nexus_server.url, token=token)
        i = 0
        while not stop.is_set():
            path = 'hot/w%d/secret-%05d' % (n, i)
            resp = client.create(path, os.urandom(256).hex())
            if resp.status_code == 201:
                with lock:
                    done.append((time.monotonic(), path))
            else:
                errors.append(resp.status_code)
            i += 1
        client.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    results = []
    try:
        while len(done) < 100:
            time.sleep(0.05)
        assert os.path.exists(str(nexus_server.db_path) + '-wal')  # the data is (partly) in the WAL
        for dummy in range(BACKUPS):
            began = time.monotonic()
            out = run_module('nexus.secrets.nexus_backup', {
                'data_dir': str(nexus_server.workdir), 'dest': str(tmp_path / 'backups'),
                'backup_password': PASSWORD, 'name': 'hot-%d.tar.gz.enc' % len(results)})
            assert out['changed'] and not out.get('failed'), out
            with lock:
                required = {path for when, path in done if when < began}
            results.append((out, required))
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    total = len(done)
    for index, (out, required) in enumerate(results):
        staging = tmp_path / ('staging-%d' % index)
        staging.mkdir(mode=0o700)
        with open(out['path'], 'rb') as src:
            extract_archive(EnvelopeReader(src, PASSWORD), str(staging))
        db = str(staging / 'nexus.db')
        assert integrity_check(db) is None
        paths = live_paths(db)
        assert required <= paths, 'backup %d misses %d secrets created before it began' % (
            index, len(required - paths))
        assert len(paths) == out['secrets']
        assert keyring_unlocks(str(staging / 'data' / 'keys'), None)
    # The writers really ran during the backups: later backups hold more, and not all.
    counts = [out['secrets'] for out, dummy in results]
    assert counts == sorted(counts) and counts[0] < counts[-1] < total + 1
