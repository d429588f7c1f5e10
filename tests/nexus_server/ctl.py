"""Command-line helper around the reference server, for playbooks, molecule and the demo.

    python -m tests.nexus_server.ctl start  --workdir D [--port P] [--storage sqlite] [--db PATH]
    python -m tests.nexus_server.ctl stop   --workdir D [--kill]
    python -m tests.nexus_server.ctl status --workdir D
    python -m tests.nexus_server.ctl seed   --url U --count N [--prefix P]

``start`` detaches the server (working directory D, so its keyring is ``D/data/keys``), waits for
``/health``, writes ``D/nexus.pid`` and ``D/nexus.json`` (pid, url, port, storage, db), logs to
``D/nexus.log`` and prints the URL. The keyring password comes from the environment
(``NEXUS_KEY_PASSWORD``), never from argv; so do fault settings (``NEXUS_FAULT_*``).
Exit codes: 0 ok, 1 failure, 3 (status) not running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

if __package__ in (None, ''):  # run as a script: import as the tests.nexus_server package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.nexus_server.harness import (ADMIN_PASSWORD, ADMIN_USER, ApiClient, free_port, login,  # noqa: E402
                                        server_command, wait_healthy)

PID_FILE = 'nexus.pid'
STATE_FILE = 'nexus.json'
LOG_FILE = 'nexus.log'


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own unreaped child) is not running
        with open('/proc/%d/stat' % pid) as fh:
            return fh.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return True


def _is_reference_server(pid):
    try:
        cmdline = Path('/proc/%d/cmdline' % pid).read_bytes().split(b'\0')
    except OSError:
        return _pid_alive(pid)
    return any(part.endswith(b'nexus_server/nexus.py') for part in cmdline)


def read_state(workdir):
    workdir = Path(workdir)
    try:
        pid = int((workdir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    state = {'pid': pid}
    try:
        state.update(json.loads((workdir / STATE_FILE).read_text()))
    except (OSError, ValueError):
        pass
    return state


def running_pid(workdir):
    state = read_state(workdir)
    if state and _pid_alive(state['pid']) and _is_reference_server(state['pid']):
        return state['pid']
    return None


def cmd_start(args):
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    pid = running_pid(workdir)
    if pid:
        print(read_state(workdir).get('url', ''))
        sys.stderr.write('already running (pid %d)\n' % pid)
        return 0
    db_path = Path(args.db).resolve() if args.db else workdir / 'nexus.db'
    attempts = 1 if args.port else 5
    for dummy in range(attempts):
        port = args.port or free_port()
        url = 'http://127.0.0.1:%d' % port
        cmd = server_command('127.0.0.1:%d' % port, args.storage, db_path)
        with open(workdir / LOG_FILE, 'ab') as log:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=dict(os.environ, PYTHONUNBUFFERED='1'))
        if wait_healthy(url, args.timeout, proc):
            (workdir / PID_FILE).write_text('%d\n' % proc.pid)
            (workdir / STATE_FILE).write_text(json.dumps({
                'pid': proc.pid, 'url': url, 'port': port, 'storage': args.storage,
                'db': str(db_path), 'workdir': str(workdir)}, indent=2) + '\n')
            print(url)
            return 0
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            break
    tail = (workdir / LOG_FILE).read_bytes()[-3000:].decode('utf-8', 'replace')
    sys.stderr.write('reference server failed to start; %s:\n%s\n' % (workdir / LOG_FILE, tail))
    return 1


def cmd_stop(args):
    workdir = Path(args.workdir).resolve()
    pid = running_pid(workdir)
    if pid is None:
        print('not running')
        _cleanup(workdir)
        return 0
    os.kill(pid, signal.SIGKILL if args.kill else signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        sys.stderr.write('pid %d did not stop within %ss\n' % (pid, args.timeout))
        return 1
    _cleanup(workdir)
    print('stopped (pid %d%s)' % (pid, ', killed' if args.kill else ''))
    return 0


def _cleanup(workdir):
    for name in (PID_FILE, STATE_FILE):
        try:
            (workdir / name).unlink()
        except FileNotFoundError:
            pass


def cmd_status(args):
    workdir = Path(args.workdir).resolve()
    pid = running_pid(workdir)
    if pid is None:
        print('stopped')
        return 3
    state = read_state(workdir)
    url = state.get('url', '')
    try:
        health = requests.get(url + '/health', timeout=5).json().get('status', 'unknown')
    except (requests.RequestException, ValueError):
        health = 'unreachable'
    print('running pid=%d url=%s health=%s' % (pid, url, health))
    return 0


def cmd_seed(args):
    token = login(args.url, args.username, args.password)
    client = ApiClient(args.url, token=token)
    created, existing = 0, 0
    for i in range(1, args.count + 1):
        path = '%s/secret-%04d' % (args.prefix.rstrip('/'), i)
        resp = client.create(path, 'demo-value-%04d' % i, {'index': str(i), 'seeded-by': 'ctl'})
        if resp.status_code == 201:
            created += 1
        elif resp.status_code in (409, 500) and client.get(path).status_code == 200:
            existing += 1  # sqlite answers 500 "failed to create secret" for an existing path
        else:
            sys.stderr.write('create %s: %s %s\n' % (path, resp.status_code, resp.text))
            return 1
    print(json.dumps({'created': created, 'existing': existing, 'prefix': args.prefix}))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m tests.nexus_server.ctl', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('start', help='start a detached reference server')
    p.add_argument('--workdir', required=True)
    p.add_argument('--port', type=int, default=None)
    p.add_argument('--storage', choices=['sqlite', 'memory'], default='sqlite')
    p.add_argument('--db', default=None, help='database path (default WORKDIR/nexus.db)')
    p.add_argument('--timeout', type=float, default=30)
    p.set_defaults(func=cmd_start)
    p = sub.add_parser('stop', help='stop it (SIGTERM; --kill for SIGKILL)')
    p.add_argument('--workdir', required=True)
    p.add_argument('--kill', action='store_true')
    p.add_argument('--timeout', type=float, default=35)
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser('status', help='running or not')
    p.add_argument('--workdir', required=True)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser('seed', help='create demo secrets through the API')
    p.add_argument('--url', required=True)
    p.add_argument('--count', type=int, required=True)
    p.add_argument('--prefix', default='demo')
    p.add_argument('--username', default=ADMIN_USER)
    p.add_argument('--password', default=ADMIN_PASSWORD)
    p.set_defaults(func=cmd_seed)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
