"""Export and import of 10,000 secrets against a reference server (sqlite): workers=1 versus the default.

    .venv/bin/python benchmarks/export_import.py [--secrets N] [--latency-ms MS] [--storage memory]

Runs the real modules through ansible-playbook (tests/helpers/ansible.py), so every figure includes
the fixed cost of one ansible-playbook run; that cost is measured too (an export matching nothing)
and printed. ``--latency-ms`` makes the server wait that long per request, like a network round
trip. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, '.cache', 'collections')]

from ansible_collections.nexus.secrets.plugins.module_utils._api import NexusClient  # noqa: E402
from ansible_collections.nexus.secrets.plugins.module_utils._parallel import map_parallel  # noqa: E402
from tests.helpers.ansible import run_module  # noqa: E402
from tests.nexus_server.harness import NexusServer  # noqa: E402

DEFAULT_WORKERS = 8


def seed(server, count):
    client = NexusClient(server.url, token=server.token(), pool_size=DEFAULT_WORKERS)
    map_parallel(lambda i: client.create_secret('bench/%05d' % i, 'value-%d-%s' % (i, 'x' * 40),
                                                {'n': str(i)} if i % 2 else None),
                 range(count), DEFAULT_WORKERS)
    client.close()


def timed(module, args):
    start = time.monotonic()
    out = run_module(module, args)
    elapsed = time.monotonic() - start
    if out.get('failed'):
        raise SystemExit('%s failed: %s' % (module, out.get('msg')))
    return elapsed, out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--secrets', type=int, default=10000)
    parser.add_argument('--latency-ms', type=float, default=0)
    parser.add_argument('--storage', choices=('sqlite', 'memory'), default='sqlite')
    opts = parser.parse_args(argv)
    faults = {'latency_ms': opts.latency_ms} if opts.latency_ms else None
    with tempfile.TemporaryDirectory(prefix='nexus-bench-') as tmp:
        servers = []
        try:
            def server(name):
                started = NexusServer(os.path.join(tmp, name), storage=opts.storage, faults=faults).start()
                servers.append(started)
                return started

            source = server('source')
            start = time.monotonic()
            seed(source, opts.secrets)
            print('seeded %d secrets in %.1f s (%s, latency %s ms)'
                  % (opts.secrets, time.monotonic() - start, opts.storage, opts.latency_ms))
            conn = dict(url=source.url, token=source.token())
            overhead, dummy = timed('nexus.secrets.nexus_export',
                                    dict(conn, dest=os.path.join(tmp, 'none.json'), prefix='no-such-prefix/'))
            print('ansible-playbook fixed cost (export of nothing): %.1f s' % overhead)

            dest = {}
            for workers in (1, DEFAULT_WORKERS):
                dest[workers] = os.path.join(tmp, 'export-%d.json' % workers)
                elapsed, out = timed('nexus.secrets.nexus_export',
                                     dict(conn, dest=dest[workers], workers=workers))
                assert out['count'] == opts.secrets, out
                print('export  workers=%d: %6.1f s  (%6.1f s without the fixed cost)'
                      % (workers, elapsed, elapsed - overhead))

            for workers in (1, DEFAULT_WORKERS):
                target = server('target-%d' % workers)
                args = dict(url=target.url, token=target.token(), src=dest[DEFAULT_WORKERS], workers=workers)
                elapsed, out = timed('nexus.secrets.nexus_import', args)
                assert out['created'] == opts.secrets, out
                print('import  workers=%d into an empty server: %6.1f s  (%6.1f s without the fixed cost)'
                      % (workers, elapsed, elapsed - overhead))
                elapsed, out = timed('nexus.secrets.nexus_import', dict(args, overwrite=True))
                assert out['unchanged'] == opts.secrets, out
                print('reimport workers=%d, overwrite, all unchanged: %6.1f s' % (workers, elapsed))
        finally:
            for started in servers:
                started.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
