"""Small pieces of the restore side: the health probe and the backup listing's sidecar check."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _backup_info, _health
from tests.nexus_server.harness import refused_port


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b'{}')

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    servers = []

    def start(status):
        handler = type('Handler', (_Answer,), {'status': status})
        httpd = http.server.HTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return 'http://127.0.0.1:%d/health' % httpd.server_port

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize('status', [200, 404, 503])
def test_any_http_answer_means_running(http_server, status):
    state, detail = _health.probe(http_server(status))
    assert state == _health.RUNNING and ('HTTP %d' % status) in detail


def test_refused_connection_means_stopped():
    state, detail = _health.probe('http://127.0.0.1:%d/health' % refused_port())
    assert state == _health.STOPPED and 'refused' in detail


def test_silence_proves_nothing():
    """Something accepts the connection but never answers: not provably stopped."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    try:
        state, detail = _health.probe('http://127.0.0.1:%d/health' % listener.getsockname()[1], timeout=0.5)
    finally:
        listener.close()
    assert state == _health.UNKNOWN and 'could not reach' in detail


def test_malformed_url_is_not_taken_for_stopped():
    assert _health.probe('not a url')[0] == _health.UNKNOWN


def test_proxy_settings_are_ignored(http_server, monkeypatch):
    monkeypatch.setenv('http_proxy', 'http://127.0.0.1:%d' % refused_port())
    monkeypatch.setenv('no_proxy', '')
    assert _health.probe(http_server(200))[0] == _health.RUNNING


def _write_sidecar(path, line):
    with open(path + '.sha256', 'w') as fh:
        fh.write(line)


@pytest.mark.parametrize('line, expected', [
    ('{digest}  {name}\n', 'ok'),
    ('{digest} *{name}\n', 'ok'),                 # sha256sum --binary
    ('{DIGEST}  {name}\n', 'ok'),
    ('{digest}  other-name.tar.gz.enc\n', 'mismatch'),
    ('{zero}  {name}\n', 'mismatch'),
    ('garbage\n', 'mismatch'),
    ('', 'mismatch'),
])
def test_sidecar_states(tmp_path, line, expected):
    path = str(tmp_path / 'nexus-backup-2025-12-04-001500.tar.gz.enc')
    with open(path, 'wb') as fh:
        fh.write(b'ciphertext')
    digest = hashlib.sha256(b'ciphertext').hexdigest()
    _write_sidecar(path, line.format(digest=digest, DIGEST=digest.upper(), zero='0' * 64,
                                     name='nexus-backup-2025-12-04-001500.tar.gz.enc'))
    assert _backup_info.sidecar_state(path) == expected


@pytest.mark.parametrize('line, expected', [
    ('{zero}  {name}\n', 'unchecked'),             # well formed: the digest is not compared
    ('{zero}  other-name.tar.gz.enc\n', 'mismatch'),
    ('garbage\n', 'mismatch'),
])
def test_sidecar_states_without_checksum_read_no_file(tmp_path, monkeypatch, line, expected):
    path = str(tmp_path / 'nexus-backup-2025-12-04-001500.tar.gz.enc')
    with open(path, 'wb') as fh:
        fh.write(b'ciphertext')
    _write_sidecar(path, line.format(zero='0' * 64, name='nexus-backup-2025-12-04-001500.tar.gz.enc'))
    monkeypatch.setattr(_backup_info._verify, 'sha256_file', lambda p: pytest.fail('read %s' % p))
    assert _backup_info.sidecar_state(path, checksum=False) == expected
    backups, dummy = _backup_info.inventory(str(tmp_path), checksum=False)
    assert [b['sidecar'] for b in backups] == [expected]


def test_missing_sidecar(tmp_path):
    path = tmp_path / 'nexus-backup-2025-12-04-001500.tar.gz.enc'
    path.write_bytes(b'x')
    assert _backup_info.sidecar_state(str(path)) == 'missing'


def test_listing_skips_sidecars_links_and_other_files(tmp_path):
    (tmp_path / 'nexus-backup-2025-12-04-001500.tar.gz.enc').write_bytes(b'a')
    (tmp_path / 'nexus-backup-2025-12-04-001500.tar.gz.enc.sha256').write_text('x')
    (tmp_path / 'nexus-backup-latest.tar.gz.enc').symlink_to(tmp_path / 'nexus-backup-2025-12-04-001500.tar.gz.enc')
    (tmp_path / 'README').write_text('x')
    (tmp_path / 'nexus-backup-dir.tar.gz.enc').mkdir()
    found = _backup_info.backup_files(str(tmp_path))
    assert [p.rsplit('/', 1)[1] for p in found] == ['nexus-backup-2025-12-04-001500.tar.gz.enc']
