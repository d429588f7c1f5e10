"""Start, stop and talk to a reference NEXUS server process (tests, playbooks, the demo).

``NexusServer`` runs ``tests/nexus_server/nexus.py`` as a real child process in its own working
directory (the keyring lands in ``workdir/data/keys`` exactly like the real server's ``./data/keys``),
on a free loopback port, and waits for ``/health``. ``ApiClient`` is a deliberately thin
``requests`` wrapper: it never raises on HTTP errors, it returns the ``Response``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import requests

SERVER_SCRIPT = Path(__file__).resolve().parent / 'nexus.py'
ADMIN_USER = 'admin'
ADMIN_PASSWORD = 'admin'
DEFAULT_KEY_PASSWORD = 'changeme-in-production'
FAULT_FLAGS = {
    'error_rate': '-fault-error-rate',
    'latency_ms': '-fault-latency-ms',
    'drop_rate': '-fault-drop-rate',
    'seed': '-fault-seed',
    'unhealthy': '-fault-unhealthy',  # boolean: /health answers 503
    'limit': '-fault-limit',  # at most this many errors and drops in all
    'log': '-fault-log',  # the server's record of every injected fault (JSON lines)
}


class ServerStartError(RuntimeError):
    pass


def free_port(host='127.0.0.1'):
    """A port that was free a moment ago (the caller retries if someone else takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


_REFUSING = {}


def refused_port(host='127.0.0.1'):
    """A port on which nobody listens for as long as this process lives: a socket of this process
    keeps it bound (no ``SO_REUSEADDR``, never listening), so no other process, parallel test
    workers included, can take it, and a connection to it is refused. (``free_port()`` only says
    that a port was free a moment ago: never use it for "nobody listens".)"""
    if host not in _REFUSING:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        _REFUSING[host] = sock
    return _REFUSING[host].getsockname()[1]


def secret_url_path(path):
    """The URL path segment for a secret path: '/' kept, everything unsafe percent-encoded."""
    return quote(path, safe='/')


class ApiClient:
    """Minimal REST client for the NEXUS API; every call returns the ``requests.Response``."""

    def __init__(self, url, token=None, api_key=None, timeout=30, session=None):
        self.url = url.rstrip('/')
        self.session = session or requests.Session()
        self.timeout = timeout
        if token:
            self.session.headers['Authorization'] = 'Bearer ' + token
        if api_key:
            self.session.headers['X-API-Key'] = api_key

    def request(self, method, url_path, **kwargs):
        kwargs.setdefault('timeout', self.timeout)
        return self.session.request(method, self.url + url_path, **kwargs)

    def _secret(self, path):
        return '/api/v1/secrets/' + secret_url_path(path)

    def health(self):
        return self.request('GET', '/health')

    def create(self, path, value, metadata=None):
        body = {'path': path, 'value': value}
        if metadata is not None:
            body['metadata'] = metadata
        return self.request('POST', '/api/v1/secrets', json=body)

    def get(self, path, **kwargs):
        return self.request('GET', self._secret(path), **kwargs)

    def put(self, path, value=None, metadata=None):
        body = {}
        if value is not None:
            body['value'] = value
        if metadata is not None:
            body['metadata'] = metadata
        return self.request('PUT', self._secret(path), json=body)

    def delete(self, path):
        return self.request('DELETE', self._secret(path))

    def list(self, prefix=None):
        params = {'prefix': prefix} if prefix is not None else None
        return self.request('GET', '/api/v1/secrets', params=params)

    def versions(self, path):
        return self.request('GET', self._secret(path) + '/versions')

    def audit(self):
        return self.request('GET', '/api/v1/audit')

    def create_api_key(self, name='test'):
        """``POST /api/v1/apikeys`` (a reference-server addition, see README): the response JSON has ``key``."""
        return self.request('POST', '/api/v1/apikeys', json={'name': name})

    def close(self):
        self.session.close()


def login(url, username=ADMIN_USER, password=ADMIN_PASSWORD, timeout=30):
    resp = requests.post(url.rstrip('/') + '/api/v1/auth/login',
                         json={'username': username, 'password': password}, timeout=timeout)
    if resp.status_code != 200:
        raise RuntimeError('login failed: %s %s' % (resp.status_code, resp.text))
    return resp.json()['token']


def wait_healthy(url, timeout=30, proc=None, statuses=(200,)):
    """Poll ``/health`` until it answers one of ``statuses``; False on timeout or if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if requests.get(url + '/health', timeout=2).status_code in statuses:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return False


def server_command(addr, storage='sqlite', db_path=None, faults=None, python=sys.executable):
    cmd = [python, str(SERVER_SCRIPT), '-addr', addr, '-storage', storage]
    if db_path is not None:
        cmd += ['-db', str(db_path)]
    for name, value in (faults or {}).items():
        if name not in FAULT_FLAGS:
            raise ValueError('unknown fault %r (known: %s)' % (name, ', '.join(FAULT_FLAGS)))
        if name == 'unhealthy':
            cmd += [FAULT_FLAGS[name]] if value else []
        elif value is not None:
            cmd += [FAULT_FLAGS[name], str(value)]
    return cmd


def server_env(key_password=None, env=None):
    """The child environment: ``key_password=None`` leaves NEXUS_KEY_PASSWORD unset."""
    child = {k: v for k, v in os.environ.items()
             if k != 'NEXUS_KEY_PASSWORD' and not k.startswith('NEXUS_FAULT_')}
    if key_password is not None:
        child['NEXUS_KEY_PASSWORD'] = key_password
    child.update(env or {})
    child.setdefault('PYTHONUNBUFFERED', '1')
    return child


class NexusServer:
    """One reference server process. ``workdir`` is its working directory (``./data/keys`` lives there)."""

    def __init__(self, workdir, storage='sqlite', key_password=None, db_path=None, port=None,
                 faults=None, env=None, python=sys.executable):
        self.workdir = Path(workdir)
        self.storage = storage
        self.key_password = key_password
        self.db_path = Path(db_path) if db_path is not None else self.workdir / 'nexus.db'
        self.keys_dir = self.workdir / 'data' / 'keys'
        self.fixed_port = port
        self.port = port
        self.faults = dict(faults or {})
        self.env = dict(env or {})
        self.python = python
        self.log_path = self.workdir / 'nexus.log'
        self.fault_log_path = self.workdir / 'nexus-faults.jsonl'
        self.proc = None
        self._token = None

    # -- process -----------------------------------------------------------------------------
    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self):
        faults = dict({'log': str(self.fault_log_path)}, **self.faults)
        return server_command('127.0.0.1:%d' % self.port, self.storage, self.db_path, faults, self.python)

    def fault_records(self):
        """The server's own record of the faults it injected (``faults.py``), oldest first."""
        try:
            text = self.fault_log_path.read_text(encoding='utf-8')
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line]

    def start(self, timeout=30, healthy=True):
        """Start and wait for ``/health`` 200 (``healthy=False``: any answer, 503 included)."""
        if self.is_running():
            raise ServerStartError('already running (pid %s)' % self.pid)
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self.fixed_port else 5
        for dummy in range(attempts):
            if not self.fixed_port:
                self.port = free_port()
            with open(self.log_path, 'ab') as log:
                self.proc = subprocess.Popen(self.command(), cwd=self.workdir, stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=server_env(self.key_password, self.env))
            if wait_healthy(self.url, timeout, self.proc, (200,) if healthy else (200, 503)):
                self._token = None
                return self
            if self.proc.poll() is None:
                self.kill()
                break
            self.proc.wait()
            if b'Address already in use' not in self._log_tail(2000).encode():
                break
        raise ServerStartError('reference server did not become healthy (rc=%s); log:\n%s'
                               % (self.proc.poll(), self._log_tail()))

    def _log_tail(self, size=4000):
        try:
            return self.log_path.read_bytes()[-size:].decode('utf-8', 'replace')
        except OSError:
            return ''

    def log_text(self):
        return self._log_tail(10 ** 7)

    def stop(self, timeout=35):
        """SIGTERM and wait (the server checkpoints its WAL); returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        """SIGKILL and wait: leaves ``-wal``/``-shm`` behind like ``kill -9``."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode if self.proc else None

    def restart(self, timeout=30, healthy=True):
        """Stop (SIGTERM) and start again, on the same port when it is still free."""
        self.stop()
        if not self.fixed_port:
            self.fixed_port = self.port  # keep the URL stable across restarts
            try:
                return self.start(timeout, healthy)
            except ServerStartError:
                self.fixed_port = None
                return self.start(timeout, healthy)
            finally:
                self.fixed_port = None
        return self.start(timeout, healthy)

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- API ---------------------------------------------------------------------------------
    def login(self, username=ADMIN_USER, password=ADMIN_PASSWORD):
        return login(self.url, username, password)

    def token(self):
        if self._token is None:
            self._token = self.login()
        return self._token

    def client(self, token=None, api_key=None):
        if api_key:
            return ApiClient(self.url, api_key=api_key)
        return ApiClient(self.url, token=token or self.token())

    def anonymous(self):
        return ApiClient(self.url)

    def __enter__(self):
        if not self.is_running():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return 'NexusServer(%s, storage=%s, port=%s, pid=%s)' % (self.workdir, self.storage, self.port,
                                                                 self.pid)
