"""Fixtures of the reference-server contract tests (docs/nexus-behaviour.md §1-§4); checks live in tests.nexus_server.checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.nexus_server.harness import SERVER_SCRIPT, NexusServer, free_port, wait_healthy


class RawServer:
    """The server script run by hand (own argv/env/cwd), for flag and signal tests."""

    def __init__(self, cwd, args, env=None):
        self.cwd = Path(cwd)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        child_env = {k: v for k, v in os.environ.items()
                     if k != 'NEXUS_KEY_PASSWORD' and not k.startswith('NEXUS_FAULT_')}
        child_env.update(env or {})
        self.log = self.cwd / 'raw-server.log'
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), '-addr', '127.0.0.1:%d' % self.port]
                                         + list(args), cwd=self.cwd, env=child_env, stdout=log,
                                         stderr=subprocess.STDOUT)
        if not wait_healthy(self.url, 30, self.proc):
            self.stop()
            raise AssertionError('raw server did not start:\n' + self.log.read_text())

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def raw_server(tmp_path):
    started = []

    def start(args, cwd=None, env=None):
        server = RawServer(cwd or tmp_path / ('raw%d' % len(started)), args, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


def _module_server(tmp_path_factory, storage):
    server = NexusServer(tmp_path_factory.mktemp('nexus-' + storage), storage=storage)
    server.start()
    return server


@pytest.fixture(scope='module')
def sqlite_server(tmp_path_factory):
    server = _module_server(tmp_path_factory, 'sqlite')
    yield server
    server.stop()


@pytest.fixture(scope='module')
def memory_server(tmp_path_factory):
    server = _module_server(tmp_path_factory, 'memory')
    yield server
    server.stop()


@pytest.fixture(params=['sqlite', 'memory'])
def any_server(request):
    """A shared server of each storage kind: tests must use unique paths (see ``unique``)."""
    return request.getfixturevalue(request.param + '_server')


@pytest.fixture
def unique(request):
    """A path prefix no other test uses."""
    name = request.node.name.replace('[', '-').replace(']', '').replace('/', '-')
    return 't-%s-%d' % (name, time.monotonic_ns())
