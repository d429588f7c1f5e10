"""Export and import of 10,000 secrets against a reference server: wall time and the module's own CPU.

    .venv/bin/python benchmarks/export_import.py [--secrets N] [--workers W] [--latency-ms MS] [--storage memory]

Each module runs as on a managed host: a child Python process executing the module file with its
arguments file (what AnsiballZ runs), so Ansible's own start-up is not counted. For each run the
script prints the wall time, the module process's CPU time (user + system, its interpreter start and
imports included), that CPU divided by the number of secrets (the client's cost per secret, which does
not depend on how fast the server is), and its peak RSS. Runs: export, import into an empty server,
re-import without overwrite (every secret exists), re-import with overwrite where nothing differs.
``--latency-ms`` makes the server wait that long per request, like a network round trip.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, '.cache', 'collections')
sys.path[:0] = [REPO, COLLECTIONS]

from ansible_collections.nexus.secrets.plugins.module_utils._api import NexusClient  # noqa: E402
from ansible_collections.nexus.secrets.plugins.module_utils._parallel import map_parallel  # noqa: E402
from tests.nexus_server.harness import NexusServer  # noqa: E402

SEED_WORKERS = 8


def seed(server, count):
    client = NexusClient(server.url, token=server.token(), pool_size=SEED_WORKERS)
    map_parallel(lambda i: client.create_secret('bench/%05d' % i, 'value-%d-%s' % (i, 'x' * 40),
                                                {'n': str(i)} if i % 2 else None),
                 range(count), SEED_WORKERS)
    client.close()


def run_module(name, args, workdir):
    """``(result, wall s, cpu s, peak RSS bytes)`` of the module run as a child process."""
    args_file = os.path.join(workdir, '%s-args.json' % name)
    with open(args_file, 'w') as fh:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, fh)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    start = time.monotonic()
    with open(os.path.join(workdir, 'out.json'), 'w+b') as out:
        proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'plugins', 'modules', name + '.py'), args_file],
                                stdout=out, env=env)
        dummy, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        out.seek(0)
        text = out.read().decode('utf-8', 'replace')
    result = json.loads(text[text.index('{'):])
    if result.get('failed'):
        raise SystemExit('%s failed: %s' % (name, result.get('msg')))
    return result, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def report(label, count, wall, cpu, rss):
    print('%-46s wall %6.2f s   CPU %6.2f s   %5.3f ms CPU/secret   peak RSS %4d MB'
          % (label, wall, cpu, 1000.0 * cpu / count, rss // 1000000))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--secrets', type=int, default=10000)
    parser.add_argument('--workers', type=int, default=None, help='module workers (default: the module default)')
    parser.add_argument('--latency-ms', type=float, default=0)
    parser.add_argument('--storage', choices=('sqlite', 'memory'), default='sqlite')
    opts = parser.parse_args(argv)
    faults = {'latency_ms': opts.latency_ms} if opts.latency_ms else None
    extra = {'workers': opts.workers} if opts.workers else {}
    count = opts.secrets
    with tempfile.TemporaryDirectory(prefix='nexus-bench-') as tmp:
        servers = []
        try:
            def server(name):
                started = NexusServer(os.path.join(tmp, name), storage=opts.storage, faults=faults).start()
                servers.append(started)
                return started

            source = server('source')
            start = time.monotonic()
            seed(source, count)
            print('seeded %d secrets in %.1f s (%s, latency %s ms, %d CPUs, workers %s)'
                  % (count, time.monotonic() - start, opts.storage, opts.latency_ms, os.cpu_count(),
                     opts.workers or 'default'))
            conn = dict(url=source.url, token=source.token())
            nothing = dict(conn, dest=os.path.join(tmp, 'none.json'), prefix='no-such-prefix/')
            dummy, wall, cpu, rss = run_module('nexus_export', nothing, tmp)
            print('module start-up alone (export of nothing): wall %.2f s, CPU %.2f s' % (wall, cpu))

            dest = os.path.join(tmp, 'export.json')
            out, wall, cpu, rss = run_module('nexus_export', dict(conn, dest=dest, **extra), tmp)
            assert out['count'] == count, out
            report('export', count, wall, cpu, rss)

            target = server('target')
            args = dict(url=target.url, token=target.token(), src=dest, **extra)
            out, wall, cpu, rss = run_module('nexus_import', args, tmp)
            assert out['created'] == count, out
            report('import into an empty server', count, wall, cpu, rss)
            out, wall, cpu, rss = run_module('nexus_import', args, tmp)
            assert out['skipped_existing'] == count, out
            report('re-import, overwrite: false', count, wall, cpu, rss)
            out, wall, cpu, rss = run_module('nexus_import', dict(args, overwrite=True), tmp)
            assert out['unchanged'] == count, out
            report('re-import, overwrite: true, nothing differs', count, wall, cpu, rss)
        finally:
            for started in servers:
                started.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
