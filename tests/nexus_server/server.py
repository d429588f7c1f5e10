"""Process lifecycle: flags, keyring, storage, HTTP server, graceful SIGTERM/SIGINT shutdown."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from . import keyring as keyring_mod
from .api import Handler, State
from .auth import Authenticator
from .faults import FaultConfig, FaultInjector
from .service import SecretService

SHUTDOWN_GRACE = 30.0


def log(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()


def parse_args(argv):
    """Go ``flag`` style: ``-addr :9000``, ``-addr=:9000`` and ``--addr`` all work."""
    parser = argparse.ArgumentParser(prog='nexus', description='NEXUS-compatible reference server')
    parser.add_argument('-addr', '--addr', default=':9000', help='listen address (default ":9000")')
    parser.add_argument('-storage', '--storage', default='memory', choices=['memory', 'sqlite'],
                        help='storage backend (default "memory")')
    parser.add_argument('-db', '--db', default='nexus.db', help='SQLite database path (default "nexus.db")')
    parser.add_argument('-fault-error-rate', '--fault-error-rate', type=float, default=None)
    parser.add_argument('-fault-latency-ms', '--fault-latency-ms', type=float, default=None)
    parser.add_argument('-fault-drop-rate', '--fault-drop-rate', type=float, default=None)
    parser.add_argument('-fault-seed', '--fault-seed', type=int, default=None)
    parser.add_argument('-fault-unhealthy', '--fault-unhealthy', action='store_const', const=True, default=None)
    parser.add_argument('-fault-limit', '--fault-limit', type=int, default=None)
    parser.add_argument('-fault-log', '--fault-log', default=None)
    return parser.parse_args(argv)


def split_addr(addr):
    host, sep, port = addr.rpartition(':')
    if not sep:
        raise ValueError('address %r: missing port' % addr)
    host = host.strip('[]')
    return host, int(port)


class NexusHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True


def open_storage(kind, db_path):
    if kind == 'sqlite':
        from .storage_sqlite import SQLiteStorage
        return SQLiteStorage(db_path)
    from .storage_memory import MemoryStorage
    return MemoryStorage()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        faults = FaultConfig.from_sources({
            'error_rate': args.fault_error_rate, 'latency_ms': args.fault_latency_ms,
            'drop_rate': args.fault_drop_rate, 'seed': args.fault_seed, 'unhealthy': args.fault_unhealthy,
            'limit': args.fault_limit, 'log': args.fault_log,
        }, os.environ)
        host, port = split_addr(args.addr)
    except ValueError as exc:
        log('invalid arguments: %s' % exc)
        return 2

    keys = keyring_mod.load_or_create(Path('data') / 'keys', keyring_mod.key_password(), log=log)
    try:
        storage = open_storage(args.storage, args.db)
    except Exception as exc:  # e.g. the directory of -db does not exist
        log('failed to initialize storage: %s' % exc)
        return 1
    if args.storage == 'sqlite':
        log('Using SQLite storage: %s' % args.db)
    else:
        log('Using in-memory storage')
    state = State(SecretService(storage, keys), Authenticator(), storage, FaultInjector(faults))
    handler = type('NexusHandler', (Handler,), {
        'state': state, 'log_requests': os.environ.get('NEXUS_LOG_REQUESTS', '') not in ('', '0')})
    try:
        httpd = NexusHTTPServer((host, port), handler)
    except OSError as exc:
        log('listen %s: %s' % (args.addr, exc))
        storage.close()
        return 1
    if faults.active or faults.unhealthy:
        log('Fault injection enabled: %s unhealthy=%s' % (faults.describe(), faults.unhealthy))

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.2}, daemon=True)
    thread.start()
    log('NEXUS server listening on %s (pid %d)' % (args.addr, os.getpid()))
    while not stop.wait(1.0):
        pass

    log('Shutting down server...')
    state.shutting_down.set()
    httpd.shutdown()
    httpd.server_close()
    if not state.wait_idle(SHUTDOWN_GRACE):
        log('Forced shutdown after %.0fs: requests still in flight' % SHUTDOWN_GRACE)
    state.service.close()
    storage.close()
    log('Server stopped')
    return 0
