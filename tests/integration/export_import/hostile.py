"""A hostile HTTP server on loopback, and a way to run a module as a child process with its peak RSS.

The server speaks just enough HTTP/1.1 to reach the client's answer handling, then misbehaves:
oversized answers (with and without a length), a gzip bomb, a one-byte-at-a-time trickle, and error
messages that echo what the client sent.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib

from tests.helpers.ansible import REPO
from tests.helpers.peak_rss import SOURCE as PEAK_RSS_SOURCE

MODULES = os.path.join(REPO, 'plugins', 'modules')
COLLECTIONS = os.path.join(REPO, '.cache', 'collections')
MIB = 1024 * 1024

_WRAPPER = PEAK_RSS_SOURCE + r'''
import runpy, sys
module, args = sys.argv[1], sys.argv[2]
sys.argv = [module, args]
try:
    runpy.run_path(module, run_name='__main__')
finally:
    sys.stderr.write('\nPEAK_RSS_KIB=%d\n' % peak_rss_kib())
'''


def run_module_child(name, args, tmp_path, timeout=120, env=None):
    """Run ``plugins/modules/<name>.py`` as Ansible would on a host (a child Python reading its args
    file) with ``env`` added to a copy of the environment, proxy and NEXUS_* variables removed; return
    ``(result dict, raw stdout, peak RSS in bytes)``."""
    args_file = tmp_path / ('%s-args.json' % name)
    args_file.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    extra = env or {}
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('NEXUS_') and k.lower() not in (
        'http_proxy', 'https_proxy', 'all_proxy'))
    env.update(extra, PYTHONPATH=COLLECTIONS)
    proc = subprocess.run([sys.executable, '-c', _WRAPPER, os.path.join(MODULES, name + '.py'), str(args_file)],
                          capture_output=True, env=env, timeout=timeout, check=False)
    stdout = proc.stdout.decode('utf-8', 'replace')
    stderr = proc.stderr.decode('utf-8', 'replace')
    peak = [line for line in stderr.splitlines() if line.startswith('PEAK_RSS_KIB=')]
    assert peak, stderr[-2000:]
    result = json.loads(stdout[stdout.index('{'):]) if '{' in stdout else {}
    return result, stdout + stderr, int(peak[-1].split('=')[1]) * 1024


def gzip_bomb(size):
    """A gzip member of ``size`` zero bytes (a few hundred KiB)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(MIB)
    parts = [packer.compress(block) for dummy in range(size // MIB)]
    parts.append(packer.flush())
    return b''.join(parts)


class HostileServer(object):
    """Answers every request with ``behaviour(request) -> callable(sock)`` on its own thread."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.url = 'http://127.0.0.1:%d' % self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, dummy = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn):
        conn.settimeout(30)
        buf = b''
        try:
            while not self._stop.is_set():
                while b'\r\n\r\n' not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b'\r\n\r\n', 1)
                lines = head.decode('latin-1').split('\r\n')
                method, target = lines[0].split(' ')[:2]
                headers = dict((k.strip().lower(), v.strip()) for k, v in
                               (line.split(':', 1) for line in lines[1:] if ':' in line))
                length = int(headers.get('content-length') or 0)
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                request = dict(method=method, target=target, headers=headers,
                               body=json.loads(body) if body else None)
                self.requests.append(request)
                if not self.behaviour(request)(conn, self._stop):
                    return
        except OSError:
            return
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        self.sock.close()
        self._accept.join(5)
        for thread in self._threads:
            thread.join(5)


def answer(status, payload, headers=None):
    """A well-formed JSON answer; the connection stays open."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    def send(conn, dummy_stop):
        head = ['HTTP/1.1 %d X' % status, 'Content-Type: application/json', 'Content-Length: %d' % len(data)]
        head += ['%s: %s' % item for item in (headers or {}).items()]
        conn.sendall(('\r\n'.join(head) + '\r\n\r\n').encode() + data)
        return True
    return send


def endless(limit, with_length):
    """A listing that never ends (up to ``limit`` bytes): claimed up front, or streamed until close."""
    entry = b'{"id":"00000000-0000-0000-0000-000000000000","path":"flood/xxxxxxxxxxxxxxxx","version":1},'

    def send(conn, stop):
        head = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
        head += 'Content-Length: %d\r\n' % limit if with_length else 'Connection: close\r\n'
        conn.sendall((head + '\r\n').encode() + b'{"secrets":[')
        block = entry * (MIB // len(entry))
        sent = 0
        while sent < limit and not stop.is_set():
            conn.sendall(block)
            sent += len(block)
        return False
    return send


def trickle(seconds, interval=0.4):
    """Headers at once, then one byte of a 100 kB body every ``interval`` s for up to ``seconds``."""
    def send(conn, stop):
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n')
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            conn.sendall(b' ')
            time.sleep(interval)
        return False
    return send
