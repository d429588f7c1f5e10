"""The harness other tests build on: pytest fixtures, NexusServer, and the ctl CLI for playbooks/demo."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.nexus_server.checks import decrypt_keyring
from tests.nexus_server.harness import NexusServer, login, refused_port

REPO = Path(__file__).resolve().parents[3]


def ctl(*args, env=None):
    child_env = {k: v for k, v in os.environ.items() if k != 'NEXUS_KEY_PASSWORD'}
    child_env.update(env or {})
    return subprocess.run([sys.executable, '-m', 'tests.nexus_server.ctl'] + list(args), cwd=REPO,
                          capture_output=True, text=True, env=child_env, timeout=120, check=False)


def test_nexus_server_fixture(nexus_server, tmp_path):
    assert nexus_server.is_running() and nexus_server.storage == 'sqlite'
    assert nexus_server.workdir == tmp_path / 'nexus'
    assert nexus_server.db_path == tmp_path / 'nexus' / 'nexus.db' and nexus_server.db_path.exists()
    assert nexus_server.keys_dir == tmp_path / 'nexus' / 'data' / 'keys'
    assert nexus_server.url == 'http://127.0.0.1:%d' % nexus_server.port
    assert requests.get(nexus_server.url + '/health').status_code == 200
    assert nexus_server.log_path.exists()


def test_factory_servers_are_independent(nexus_server_factory):
    one = nexus_server_factory()
    two = nexus_server_factory(storage='memory', key_password='other-pw')
    assert one.port != two.port and one.workdir != two.workdir
    one.client().create('only/in/one', 'v')
    assert two.client().list().json()['total'] == 0
    decrypt_keyring(two.keys_dir, 'other-pw')
    assert one.stop() == 0 and not one.is_running()
    assert two.is_running()


def test_context_manager_and_custom_db_path(tmp_path):
    db = tmp_path / 'elsewhere' / 'custom.db'
    db.parent.mkdir()
    with NexusServer(tmp_path / 'cm', db_path=db) as server:
        resp = server.client().create('cm/a', 'v')
        assert resp.status_code == 201
        pid = server.pid
    assert not server.is_running() and server.proc.returncode == 0 and pid
    assert db.exists() and not db.with_name('custom.db-wal').exists()


def test_ctl_start_seed_status_stop(tmp_path):
    workdir = tmp_path / 'ctl'
    started = ctl('start', '--workdir', str(workdir), env={'NEXUS_KEY_PASSWORD': 'ctl-pw'})
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith('http://127.0.0.1:')
    try:
        state = json.loads((workdir / 'nexus.json').read_text())
        assert int((workdir / 'nexus.pid').read_text()) == state['pid'] and state['url'] == url
        assert (workdir / 'nexus.log').exists()
        decrypt_keyring(workdir / 'data' / 'keys', 'ctl-pw')  # password from the environment
        assert 'ctl-pw' not in Path('/proc/%d/cmdline' % state['pid']).read_text()  # never in argv

        status = ctl('status', '--workdir', str(workdir))
        assert status.returncode == 0 and 'running' in status.stdout and 'healthy' in status.stdout

        seeded = ctl('seed', '--url', url, '--count', '4', '--prefix', 'demo/app')
        assert seeded.returncode == 0, seeded.stderr
        assert json.loads(seeded.stdout) == {'created': 4, 'existing': 0, 'prefix': 'demo/app'}
        again = ctl('seed', '--url', url, '--count', '4', '--prefix', 'demo/app')
        assert json.loads(again.stdout)['existing'] == 4

        token = login(url)
        listed = requests.get(url + '/api/v1/secrets', params={'prefix': 'demo/app/'},
                              headers={'Authorization': 'Bearer ' + token}).json()
        assert listed['total'] == 4
    finally:
        stopped = ctl('stop', '--workdir', str(workdir))
    assert stopped.returncode == 0, stopped.stderr
    assert not (workdir / 'nexus.pid').exists() and not (workdir / 'nexus.db-wal').exists()
    status = ctl('status', '--workdir', str(workdir))
    assert status.returncode == 3 and 'stopped' in status.stdout


def test_ctl_stop_kill_leaves_the_wal(tmp_path):
    workdir = tmp_path / 'ctl-kill'
    started = ctl('start', '--workdir', str(workdir), '--storage', 'sqlite')
    assert started.returncode == 0, started.stderr
    try:
        seeded = ctl('seed', '--url', started.stdout.strip(), '--count', '2')
        assert seeded.returncode == 0
    finally:
        killed = ctl('stop', '--workdir', str(workdir), '--kill')
    assert killed.returncode == 0 and 'killed' in killed.stdout
    assert (workdir / 'nexus.db-wal').exists() and (workdir / 'nexus.db-shm').exists()
    assert ctl('stop', '--workdir', str(workdir)).stdout.strip() == 'not running'


def test_refused_port_is_refused_and_cannot_be_taken():
    """What parallel workers rely on: no other socket (another worker's server) can bind it, even
    with SO_REUSEADDR as the reference server sets, and a connection to it is refused."""
    port = refused_port()
    assert refused_port() == port
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with other, pytest.raises(OSError) as taken:
        other.bind(('127.0.0.1', port))
    assert taken.value.errno == errno.EADDRINUSE
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.0.1', port), timeout=5).close()
