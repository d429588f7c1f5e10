"""Backup and restore of a large NEXUS data directory: wall time and peak RSS. Prints figures only.

    .venv/bin/python benchmarks/backup_restore.py [--size-mib N] [--data random|mixed|real|all] [--live]
                                                  [--compression deflate|store|both] [--ansible] [--keep DIR]

Builds a data directory in a temp dir: ``nexus.db`` with NEXUS's schema (secrets with random
encrypted-looking values, one version row each, audit rows) of about ``--size-mib`` MiB (default
1024, or ``NEXUS_BENCH_SIZE_MIB``), plus a keyring. ``--data`` picks the values: ``random`` (every
value encrypted-looking, nothing compresses), ``mixed`` (values alternate between random and
repetitive text every 128 KiB), ``real`` (a server that ran for a while: 20,000 secrets with three
versions each and an audit log of signed rows with fresh ids grown to the size; the time of SQLite's
quick_check and integrity_check on it is printed too), or ``all`` (the default: one run of each).
``mixed`` and ``real`` children cannot import isal: the standard library's zlib, as on NEXUS hosts. Then:

- ``core``: a fresh Python child runs ``_backup.create_backup`` and then ``_restore.restore`` (the
  code the modules run); each child reports its own peak RSS (``ru_maxrss``).
- ``--compression``: nexus_backup's option (default ``deflate``); ``both`` backs up and restores once
  with each, so that the file size and the times of the two sit side by side.
- ``--live``: a connection holds the database open with a committed transaction in its WAL, as a
  running server's does, so the backup copies the snapshot with SQLite's online backup API first
  (by default the WAL is empty, as after a clean stop, and ``nexus.db`` is streamed from the file).
- ``--ansible``: also runs the modules ``nexus.secrets.nexus_backup`` / ``nexus_restore`` through
  ansible-playbook; wall time of the whole task, peak RSS of the module process (sampled with psutil).

Targets on the 2-core machine (issue 3): peak RSS < 150 MB; backup of 1 GiB < 5 s; restore < 7 s.
nexusctl: backup 27 s / 6.3 GB, restore 7 s / 2.2 GB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / '.cache' / 'collections')]

from tests.nexus_server import cipher as server_cipher  # noqa: E402
from tests.nexus_server import keyring as server_keyring  # noqa: E402
from tests.nexus_server.storage_sqlite import SCHEMA  # noqa: E402

COMPRESS_LEVEL = 1  # _gzip_stream's; not imported here, so that only the children choose their codec

PASSWORD = 'benchmark-backup-password'
KEY_PASSWORD = 'benchmark-keyring-password'
VALUE_BYTES = 12 * 1024  # secret value blob (nonce || AES-GCM ciphertext): incompressible
MIB = 1024 * 1024


def text_pool(size):
    """Repetitive, audit-log-like text: compresses well, as about half of a real database does."""
    line = b'{"action":"read","user":"admin-001","path":"prod/team-%03d/db/password","ip":"127.0.0.1"}\n'
    return b''.join(line % (i % 1000) for i in range(size // len(line) + 1))[:size]


def build_real_shaped(conn, size_mib, master_key, secrets=20000, versions=3):
    """A server that has run for a while: ``secrets`` secrets with ``versions`` versions each, and an
    audit log (one signed row per request, fresh ids, time stamps, paths) grown to ``size_mib`` MiB.

    The values are sealed with ``master_key`` as the server seals them, so a server started on the
    database reads them."""
    rng = random.Random(7)
    cipher = server_cipher.ValueCipher(master_key)

    def sealed(size):  # nonce(12) + ciphertext + tag(16): ``size`` bytes in all
        return cipher.encrypt(os.urandom(size - 28))

    actions = ('secret.read', 'secret.read', 'secret.read', 'secret.list', 'secret.update', 'auth.login')
    conn.execute('BEGIN')
    for i in range(secrets):
        sid, path = str(uuid.UUID(int=rng.getrandbits(128))), 'prod/team-%03d/app-%05d/secret' % (i % 300, i)
        value = sealed(28 + rng.randrange(200))
        conn.execute('INSERT INTO secrets (id, path, value, metadata, version, created_at, created_by, updated_at,'
                     ' updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
                     (sid, path, value, '{"owner":"team-%03d"}' % (i % 300), versions, '2026-01-01T00:00:00Z',
                      'admin-001', '2026-06-01T00:00:00Z', 'admin-001'))
        conn.executemany('INSERT INTO secret_versions (id, secret_id, version, value, created_at, created_by)'
                         ' VALUES (?, ?, ?, ?, ?, ?)',
                         [(str(uuid.UUID(int=rng.getrandbits(128))), sid, v + 1, sealed(len(value)),
                           '2026-0%d-01T00:00:00Z' % (v + 1), 'admin-001') for v in range(versions)])
    conn.execute('COMMIT')
    start = datetime.datetime(2026, 1, 1)
    row = 0
    batch_rows = 20000 if size_mib >= 64 else 1000  # a small database ends close to its size
    while os.path.getsize(conn.execute('PRAGMA database_list').fetchone()[2]) < size_mib * MIB:
        batch = []
        for dummy in range(batch_rows):
            row += 1
            i = rng.randrange(secrets)
            batch.append((str(uuid.UUID(int=rng.getrandbits(128))),
                          (start + datetime.timedelta(seconds=row)).strftime('%Y-%m-%dT%H:%M:%SZ'),
                          rng.choice(actions), 'admin-001', 'sec-%05d' % i,
                          'prod/team-%03d/app-%05d/secret' % (i % 300, i), '10.%d.%d.%d' % (
                              rng.randrange(256), rng.randrange(256), rng.randrange(256)),
                          'nexusctl/1.0', '', '{}', os.urandom(64).hex()))
        conn.execute('BEGIN')
        conn.executemany('INSERT INTO audit_logs (id, timestamp, action, user, secret_id, secret_path, ip_address,'
                         ' user_agent, success, error, metadata, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)',
                         batch)
        conn.execute('COMMIT')
    return secrets


def build_data_dir(root, size_mib, data='random', secrets=20000):
    """A WAL-mode nexus.db of about ``size_mib`` MiB, and a keyring, under ``root``.

    ``secrets``: how many secrets a real-shaped database holds (each with three versions)."""
    keyring = server_keyring.generate_plaintexts()
    server_keyring.save(root / 'data' / 'keys', keyring, KEY_PASSWORD)
    db = root / 'nexus.db'
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('PRAGMA synchronous=OFF')
    for statement in SCHEMA:
        conn.execute(statement)
    if data == 'real':
        count = build_real_shaped(conn, size_mib, keyring.master, secrets=secrets)
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        conn.close()
        return db, count
    pool = os.urandom(8 * MIB)
    text = text_pool(8 * MIB)
    # mixed: about 128 KiB of values (a value and its version row) from each pool in turn
    stripe = max(1, 128 * 1024 // (2 * VALUE_BYTES))
    per_secret = 2 * VALUE_BYTES + 600  # value + one version + row and audit overhead
    count = max(1, size_mib * MIB // per_secret)
    conn.execute('BEGIN')
    for i in range(count):
        start = (i * 7919) % (len(pool) - VALUE_BYTES)
        # Fresh random bytes per value, as AES-GCM ciphertexts are: slices of one pool would overlap
        # and repeat within deflate's window, which real values never do.
        textual = data == 'mixed' and (i // stripe) % 2
        value = text[start:start + VALUE_BYTES] if textual else os.urandom(VALUE_BYTES)
        sid = 'sec-%08d' % i
        path = 'bench/team-%03d/secret-%07d' % (i % 500, i)
        conn.execute('INSERT INTO secrets (id, path, value, metadata, version, created_at, created_by, updated_at,'
                     ' updated_by) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)',
                     (sid, path, value, '{"owner":"bench"}', '2026-01-01T00:00:00Z', 'admin-001',
                      '2026-01-01T00:00:00Z', 'admin-001'))
        conn.execute('INSERT INTO secret_versions (id, secret_id, version, value, created_at, created_by)'
                     ' VALUES (?, ?, 1, ?, ?, ?)', ('ver-%08d' % i, sid, value[::-1], '2026-01-01T00:00:00Z',
                                                    'admin-001'))
        conn.execute('INSERT INTO audit_logs (id, timestamp, action, user, secret_id, secret_path, ip_address,'
                     ' user_agent, success, error, metadata, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)',
                     ('aud-%08d' % i, '2026-01-01T00:00:00Z', 'create', 'admin-001', sid, path, '127.0.0.1',
                      'bench', '', '{}', pool[start:start + 64].hex()))
        if i % 5000 == 4999:
            conn.execute('COMMIT')
            conn.execute('BEGIN')
    conn.execute('COMMIT')
    conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    conn.close()
    return db, count


def hold_open_with_wal(db):
    """A connection like a running server's, with one committed transaction still in the WAL."""
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute('PRAGMA wal_autocheckpoint=0')
    conn.execute("UPDATE secrets SET metadata = '{\"owner\":\"live\"}' WHERE id = 'sec-00000000'")
    return conn


CHILD = r'''
import json, os, resource, sys, time
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], '.cache', 'collections')]
args = json.loads(sys.argv[2])
if args.get('no_isal'):
    sys.modules['isal'] = None  # as on NEXUS hosts: the standard library's zlib only
started = time.time()
if args['step'] == 'backup':
    from ansible_collections.nexus.secrets.plugins.module_utils._backup import create_backup
    out = create_backup(args['db'], args['keys'], args['dest'], args['password'], compression=args['compression'])
    info = {'path': out['path'], 'size': out['size'], 'secrets': out['secrets']}
    from ansible_collections.nexus.secrets.plugins.module_utils import _gzip_stream
    info['codec'] = _gzip_stream.ZLIB.__name__
else:
    from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _restore
    out = _restore.restore(args['src'], args['password'], _layout.Layout(args['data_dir']),
                           key_password=args['key_password'], keep_pre_restore=False)
    info = {'changed': out['changed'], 'secrets': out.get('secrets')}
info['wall_s'] = time.time() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
info['cpu_s'] = usage.ru_utime + usage.ru_stime  # whole process, imports included
info['peak_rss_mb'] = usage.ru_maxrss / 1024.0
print(json.dumps(info))
'''


def run_core(step, **args):
    args['step'] = step
    started = time.time()
    proc = subprocess.run([sys.executable, '-c', CHILD, str(REPO), json.dumps(args)], capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        raise SystemExit('%s failed:\n%s' % (step, proc.stderr))
    info = json.loads(proc.stdout)
    info['process_wall_s'] = time.time() - started  # including interpreter start and imports
    return info


class PeakRss(threading.Thread):
    """Samples the RSS of processes whose command line contains ``marker``."""

    def __init__(self, marker):
        super().__init__(daemon=True)
        self.marker = marker
        self.peak = 0
        self.stopped = threading.Event()

    def run(self):
        import psutil
        while not self.stopped.is_set():
            for proc in psutil.process_iter(['cmdline', 'memory_info']):
                cmdline = ' '.join(proc.info['cmdline'] or [])
                if self.marker in cmdline and proc.info['memory_info'] is not None:
                    self.peak = max(self.peak, proc.info['memory_info'].rss)
            time.sleep(0.02)

    def stop(self):
        self.stopped.set()
        self.join()
        return self.peak / MIB


def run_ansible(module, args):
    from tests.helpers.ansible import run_module
    sampler = PeakRss('AnsiballZ_%s' % module)
    sampler.start()
    started = time.time()
    out = run_module('nexus.secrets.' + module, args)
    wall = time.time() - started
    peak = sampler.stop()
    if out.get('failed'):
        raise SystemExit('%s failed: %s' % (module, out.get('msg')))
    return {'wall_s': wall, 'module_duration_s': out.get('duration'), 'peak_rss_mb': peak}


def run_core_pair(root, db, data_dir, compression, no_isal):
    """Back ``db`` up with ``compression`` and restore that backup, each in a fresh child; print both."""
    dest = root / ('backups-' + compression)
    backup = run_core('backup', db=str(db), keys=str(data_dir / 'data' / 'keys'), dest=str(dest),
                      password=PASSWORD, no_isal=no_isal, compression=compression)
    print('compression %s; gzip codec: %s, level %d; cpus: %d; load average before: %.1f'
          % (compression, backup['codec'], COMPRESS_LEVEL if compression == 'deflate' else 0, os.cpu_count(),
             os.getloadavg()[0]))
    print('core backup : %6.2f s (process %6.2f s, CPU %6.2f s)  peak RSS %6.1f MB  file %.0f MiB, %d secrets'
          % (backup['wall_s'], backup['process_wall_s'], backup['cpu_s'], backup['peak_rss_mb'],
             backup['size'] / MIB, backup['secrets']))
    target = root / 'restored'
    restore = run_core('restore', src=backup['path'], password=PASSWORD, data_dir=str(target),
                       key_password=KEY_PASSWORD, no_isal=no_isal)
    print('core restore: %6.2f s (process %6.2f s, CPU %6.2f s)  peak RSS %6.1f MB  changed=%s'
          % (restore['wall_s'], restore['process_wall_s'], restore['cpu_s'], restore['peak_rss_mb'],
             restore['changed']))
    shutil.rmtree(str(target))


def run_case(data, opts):
    """Build one data directory, back it up and restore it; print the figures."""
    no_isal = data in ('mixed', 'real')
    server = None
    root = Path(opts.keep or tempfile.mkdtemp(prefix='nexus-bench-', dir=os.environ.get('TMPDIR')))
    try:
        data_dir = root / 'data'
        started = time.time()
        db, count = build_data_dir(data_dir, opts.size_mib, data)
        server = hold_open_with_wal(db) if opts.live else None
        os.sync()  # the build's dirty pages would otherwise be written back during the measured runs
        print('--- %s data: %s (%d secrets, nexus.db %.0f MiB) built in %.1f s'
              % (data, data_dir, count, os.path.getsize(str(db)) / MIB, time.time() - started))
        if data == 'real':
            for pragma in ('quick_check', 'integrity_check'):
                check = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
                started = time.time()
                check.execute('PRAGMA %s' % pragma).fetchall()
                print('PRAGMA %-15s %6.2f s' % (pragma, time.time() - started))
                check.close()
        for compression in (('deflate', 'store') if opts.compression == 'both' else (opts.compression,)):
            run_core_pair(root, db, data_dir, compression, no_isal)
        if opts.ansible:
            dest, target = root / 'backups', root / 'restored'
            out = run_ansible('nexus_backup', {'data_dir': str(data_dir), 'dest': str(dest),
                                               'backup_password': PASSWORD, 'name': 'via-ansible.tar.gz.enc',
                                               'compression': opts.compression.replace('both', 'deflate')})
            print('ansible nexus_backup : task %6.2f s (module %6.2f s)  module peak RSS %6.1f MB'
                  % (out['wall_s'], out['module_duration_s'], out['peak_rss_mb']))
            out = run_ansible('nexus_restore', {'src': str(dest / 'via-ansible.tar.gz.enc'),
                                                'backup_password': PASSWORD, 'data_dir': str(target),
                                                'key_password': KEY_PASSWORD, 'force': True,
                                                'pre_restore_backup': False})
            print('ansible nexus_restore: task %6.2f s (module %6.2f s)  module peak RSS %6.1f MB'
                  % (out['wall_s'], out['module_duration_s'], out['peak_rss_mb']))
    finally:
        if server is not None:
            server.close()
        if not opts.keep:
            shutil.rmtree(str(root), ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=int(os.environ.get('NEXUS_BENCH_SIZE_MIB', '1024')))
    parser.add_argument('--data', choices=('random', 'mixed', 'real', 'all'), default='all',
                        help='random values; half random and half text; or a real-shaped database (20,000 secrets '
                             'with versions and an audit log); mixed and real with isal hidden (default: all)')
    parser.add_argument('--compression', choices=('deflate', 'store', 'both'), default='deflate',
                        help="nexus_backup's compression; both: one backup and restore with each (default: deflate)")
    parser.add_argument('--ansible', action='store_true', help='also run the modules through ansible-playbook')
    parser.add_argument('--live', action='store_true',
                        help='leave a committed transaction in the WAL with the database open (a running server)')
    parser.add_argument('--keep', help='build in this directory and keep it (default: a temp dir, removed)')
    opts = parser.parse_args(argv)
    print('%s, %s UTC' % (platform.platform(), time.strftime('%Y-%m-%d %H:%M', time.gmtime())))
    for data in (('random', 'mixed', 'real') if opts.data == 'all' else (opts.data,)):
        run_case(data, opts)
    return 0


if __name__ == '__main__':
    sys.exit(main())
