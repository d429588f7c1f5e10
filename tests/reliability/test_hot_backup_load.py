"""Hot backups under load: writer threads create secrets while nexus_backup runs 20+ times.

Each backup runs the module's ``main()`` in its own process (``killpoints.spawn`` without a kill),
so the writers feel what the server feels, not this test's GIL. Every backup is then restored into
a scratch dir by the restore core (decrypt, unpack, integrity_check, schema, keyring unlocks with the
server's key password) and must hold every secret whose create returned 201 before that backup
began: writes lost must be 0. One restored copy is served by a reference server and a secret is read
back. The writers' errors and latency with and without concurrent backups are printed (figures, not
assertions; recorded in docs/reliability.md).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import threading
import time

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _restore, _verify
from tests.nexus_server.harness import ApiClient, NexusServer
from tests.reliability import datadirs, killpoints

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('reliability')]

PASSWORD = 'hot-load-backup-password'
KEY_PASSWORD = 'hot-load-key-password'
WRITERS = 4
BACKUPS = 20
BASELINE_S = 8.0
PADDING_BYTES = 4 << 20  # so that one backup takes a while, not a blink


class Writers(object):
    """``WRITERS`` threads creating secrets until stopped; every call timed and its outcome kept."""

    def __init__(self, url, token):
        self.url, self.token = url, token
        self.lock = threading.Lock()
        self.calls = []  # (start, end, status or exception name, path, value)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(WRITERS)]

    def _run(self, n):
        client = ApiClient(self.url, token=self.token)
        i = 0
        while not self.stop.is_set():
            path, value = 'load/w%d/secret-%06d' % (n, i), os.urandom(24).hex()
            start = time.monotonic()
            try:
                status = client.create(path, value).status_code
            except Exception as exc:  # counted as an error, reported as a figure
                status = type(exc).__name__
            with self.lock:
                self.calls.append((start, time.monotonic(), status, path, value))
            i += 1
        client.close()

    def acked_before(self, when):
        with self.lock:
            return {path: value for _s, end, status, path, value in self.calls if status == 201 and end < when}

    def figures(self, begin, end):
        """Calls started in [begin, end): count, errors, median and p95 latency (ms)."""
        with self.lock:
            window = [c for c in self.calls if begin <= c[0] < end]
        latencies = sorted((c[1] - c[0]) * 1000 for c in window)
        errors = sum(1 for c in window if c[2] != 201)
        p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float('nan')
        return {'calls': len(window), 'errors': errors, 'per_s': round(len(window) / (end - begin), 1),
                'median_ms': round(statistics.median(latencies), 1) if latencies else None,
                'p95_ms': round(p95, 1)}


def pad(db_path):
    datadirs.pad_versions(db_path, PADDING_BYTES)


def secret_paths(db_path):
    conn = sqlite3.connect('file:%s?mode=ro&immutable=1' % db_path, uri=True)
    try:
        return {row[0] for row in conn.execute('SELECT path FROM secrets WHERE deleted_at IS NULL')}
    finally:
        conn.close()


def test_repeated_hot_backups_under_load_lose_no_acknowledged_write(nexus_server_factory, tmp_path):
    workdir = tmp_path / 'nexus'
    workdir.mkdir()
    pad(workdir / 'nexus.db')  # NEXUS's schema, padded; the server finds its tables there
    server = nexus_server_factory(workdir=workdir, key_password=KEY_PASSWORD)
    writers = Writers(server.url, server.token())
    for thread in writers.threads:
        thread.start()
    backups = []
    try:
        t0 = time.monotonic()
        time.sleep(BASELINE_S)
        t1 = time.monotonic()
        for n in range(BACKUPS):
            began = time.monotonic()
            required = writers.acked_before(began)
            res = killpoints.spawn('nexus_backup', {
                'data_dir': str(workdir), 'dest': str(tmp_path / 'backups'), 'backup_password': PASSWORD,
                'name': 'hot-%02d.tar.gz.enc' % n}, tmp_path / 'child' / str(n))
            assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
            backups.append((res.module_result(), required, began, time.monotonic()))
        t2 = time.monotonic()
    finally:
        writers.stop.set()
        for thread in writers.threads:
            thread.join()
    baseline, loaded = writers.figures(t0, t1), writers.figures(t1, t2)
    acked = writers.acked_before(float('inf'))
    assert os.path.exists(str(workdir / 'nexus.db-wal'))  # the backups really ran against a live WAL

    lost = 0
    counts = []
    for n, (out, required, _began, _ended) in enumerate(backups):
        staging = tmp_path / ('verify-%02d' % n)
        staging.mkdir(mode=0o700)
        staged = _verify.stage_backup(out['path'], PASSWORD, str(staging), key_password=KEY_PASSWORD)
        assert staged.integrity == 'ok' and staged.keyring_verified
        paths = secret_paths(staged.db_path)
        lost += len(set(required) - paths)
        counts.append(len(paths))
        assert len(paths) == out['secrets'] == staged.secrets
        assert paths <= set(acked) | {c[3] for c in writers.calls}  # nothing that was never written
    # Restore one copy with the restore core and let a reference server serve it.
    middle_out, middle_required, _b, _e = backups[BACKUPS // 2]
    restored = tmp_path / 'restored'
    _restore.restore(middle_out['path'], PASSWORD, _layout.Layout(str(restored)), key_password=KEY_PASSWORD)
    server.stop()
    final_lost = len(set(acked) - secret_paths(str(workdir / 'nexus.db')))
    copy = NexusServer(restored, key_password=KEY_PASSWORD)
    copy.start()
    try:
        path = sorted(middle_required)[-1]
        resp = copy.client().get(path)
        assert resp.status_code == 200 and resp.json()['value'] == middle_required[path], resp.text
    finally:
        copy.stop()

    durations = sorted(end - began for _o, _r, began, end in backups)
    print('\nHOT BACKUP: %d writers, %d backups verified, writes acknowledged %d, writes lost %d (server: %d)'
          % (WRITERS, len(backups), len(acked), lost, final_lost))
    print('HOT BACKUP: backup size %d bytes, duration median %.2f s (max %.2f s), secrets per backup %d..%d'
          % (backups[-1][0]['size'], statistics.median(durations), durations[-1], counts[0], counts[-1]))
    print('HOT BACKUP: writers without backups: %s' % baseline)
    print('HOT BACKUP: writers during backups:  %s' % loaded)
    assert lost == 0 and final_lost == 0
    assert counts == sorted(counts) and counts[0] < counts[-1]  # the writers really wrote during the backups
