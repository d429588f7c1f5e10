"""The REST client core against a scripted loopback HTTP stub (fault injection: drops, 5xx, redirects)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._api import (
    NexusApiError,
    NexusClient,
    backoff_delay,
    secret_endpoint,
)

DROP = 'drop'


class Stub(object):
    """Answers requests from a script of (status, body[, headers]) or DROP; records what it saw."""

    def __init__(self):
        self.script = []
        self.seen = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                stub.seen.append(dict(method=self.command, path=self.path, headers=dict(self.headers),
                                      body=json.loads(body) if body else None))
                step = stub.script.pop(0) if stub.script else (200, {})
                if step == DROP:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status, payload = step[0], step[1]
                headers = step[2] if len(step) > 2 else {}
                data = json.dumps(payload).encode() if payload is not None else b''
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.close()


def client_for(stub, sleeps=None, **kwargs):
    kwargs.setdefault('token', 'tok-SECRET')
    return NexusClient(stub.url, sleep=(sleeps.append if sleeps is not None else (lambda s: None)), **kwargs)


def err(status, message):
    return (status, {'error': 'x', 'message': message})


def test_get_retries_503_and_drops_then_succeeds(stub):
    stub.script = [err(503, 'busy'), DROP, err(502, 'bad gateway'),
                   (200, {'path': 'a/b', 'value': 'v'})]
    sleeps = []
    answer = client_for(stub, sleeps, retries=3).get_secret('a/b')
    assert answer['value'] == 'v'
    assert len(stub.seen) == 4
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]  # backoff grows


def test_get_gives_up_after_retries_with_status_and_message(stub):
    stub.script = [err(503, 'busy')] * 3
    with pytest.raises(NexusApiError) as info:
        client_for(stub, retries=2).get_secret('a')
    assert info.value.status == 503 and info.value.message == 'busy'
    assert len(stub.seen) == 3


def test_500_and_404_are_not_retried(stub):
    stub.script = [err(500, 'failed to decrypt secret'), err(404, 'secret not found')]
    client = client_for(stub, retries=3)
    with pytest.raises(NexusApiError) as info:
        client.get_secret('a')
    assert (info.value.status, info.value.message) == (500, 'failed to decrypt secret')
    assert client.find_secret('a') is None
    assert len(stub.seen) == 2


def test_writes_are_sent_once(stub):
    stub.script = [err(503, 'busy'), DROP]
    client = client_for(stub, retries=3)
    with pytest.raises(NexusApiError) as info:
        client.create_secret('a', 'v', {'k': 'x'})
    assert info.value.status == 503
    with pytest.raises(NexusApiError) as info:
        client.update_secret('a', 'v', {})
    assert info.value.status is None and info.value.transient
    assert [s['method'] for s in stub.seen] == ['POST', 'PUT']
    assert stub.seen[0]['body'] == {'path': 'a', 'value': 'v', 'metadata': {'k': 'x'}}
    assert stub.seen[1]['body'] == {'value': 'v', 'metadata': {}}


def test_create_omits_empty_metadata(stub):
    stub.script = [(201, {'path': 'a'})]
    client_for(stub).create_secret('a', 'v', {})
    assert stub.seen[0]['body'] == {'path': 'a', 'value': 'v'}


def test_redirect_is_not_followed(stub):
    stub.script = [(301, None, {'Location': '/api/v1/secrets/b'})]
    with pytest.raises(NexusApiError) as info:
        client_for(stub).get_secret('a/../b')
    assert info.value.status == 301 and 'redirected' in info.value.message
    assert len(stub.seen) == 1


def test_answer_about_another_path_is_refused(stub):
    stub.script = [(200, {'path': 'b', 'value': 'other secret'})]
    with pytest.raises(NexusApiError) as info:
        client_for(stub).get_secret('a')
    assert 'another path' in info.value.message


def test_dot_segments_are_encoded_not_normalised(stub):
    for path in ('a/../b', 'a/./b', 'sp ace/%/?#'):
        stub.script = [err(404, 'secret not found')]
        client_for(stub).find_secret(path)
    assert [s['path'] for s in stub.seen] == [
        '/api/v1/secrets/a/%2E%2E/b', '/api/v1/secrets/a/%2E/b', '/api/v1/secrets/sp%20ace/%25/%3F%23']
    assert secret_endpoint('a/../b') == '/api/v1/secrets/a/%2E%2E/b'


def test_auth_headers(stub):
    stub.script = [(200, {'secrets': []}), (200, {'secrets': []})]
    client_for(stub, token='jwt-1').list_secrets()
    client_for(stub, token=None, api_key='key-1').list_secrets(prefix='p_')
    assert stub.seen[0]['headers'].get('Authorization') == 'Bearer jwt-1'
    assert stub.seen[1]['headers'].get('X-API-Key') == 'key-1'
    assert 'Authorization' not in stub.seen[1]['headers']
    assert stub.seen[1]['path'] == '/api/v1/secrets?prefix=p_'


def test_login_uses_the_token_and_forgets_the_password(stub):
    stub.script = [(200, {'token': 'jwt-2', 'expires_at': 'x', 'user': {}}), (200, {'secrets': []})]
    client = client_for(stub, token=None, username='admin', password='pw-SECRET')
    client.login()
    client.list_secrets()
    assert stub.seen[0]['body'] == {'username': 'admin', 'password': 'pw-SECRET'}
    assert stub.seen[1]['headers']['Authorization'] == 'Bearer jwt-2'
    assert client._password is None


def test_bad_login_carries_server_message(stub):
    stub.script = [err(401, 'invalid credentials')]
    with pytest.raises(NexusApiError) as info:
        client_for(stub, token=None, username='admin', password='pw-SECRET').login()
    assert info.value.status == 401 and 'invalid credentials' in str(info.value)
    assert 'pw-SECRET' not in str(info.value)


def test_unreachable_server_is_a_transient_error_without_credentials():
    from tests.nexus_server.harness import refused_port
    client = NexusClient('http://127.0.0.1:%d' % refused_port(), api_key='key-SECRET', retries=2,
                         sleep=lambda s: None)
    with pytest.raises(NexusApiError) as info:
        client.list_secrets()
    assert info.value.status is None and 'cannot reach' in info.value.message
    assert 'key-SECRET' not in str(info.value)


def test_listing_must_hold_a_list(stub):
    stub.script = [(200, {'total': 0})]
    with pytest.raises(NexusApiError):
        client_for(stub).list_secrets()


def test_backoff_delay_is_bounded_and_jittered():
    assert backoff_delay(0, base=1.0, rng=lambda: 0.0) == 0.5
    assert backoff_delay(0, base=1.0, rng=lambda: 1.0) == 1.0
    assert backoff_delay(10, base=1.0, cap=4.0, rng=lambda: 1.0) == 4.0
    assert backoff_delay(2, base=1.0, rng=lambda: 0.5) == 3.0


def test_listing_and_login_repeat_a_500(stub):
    stub.script = [err(500, 'failed to list secrets'), (200, {'secrets': [{'path': 'a'}], 'total': 1}),
                   err(500, 'x'), (200, {'token': 'jwt-3'})]
    client = client_for(stub, token=None, username='u', password='p')
    assert client.list_secrets() == [{'path': 'a'}]
    client.login()
    assert len(stub.seen) == 4


def test_redact_keeps_known_messages_and_masks_the_rest():
    from ansible_collections.nexus.secrets.plugins.module_utils._api import redact
    assert redact('secret not found', ['secret']) == 'secret not found'
    assert redact('bad value s3cr"t!', ['s3cr"t']) == 'bad value <redacted>!'
    assert redact('bad value s3cr\\"t', ['s3cr"t']) == 'bad value <redacted>'
    assert redact('key eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lk here') == 'key <redacted> here'
    assert redact('x' * 10 + ' ' + 'y ' * 200).endswith('...') and len(redact('y ' * 200)) == 203


def test_answers_past_the_size_limit_are_refused(stub):
    stub.script = [(200, {'secrets': [{'path': 'p%d' % i} for i in range(100)]}), (200, {'secrets': []})]
    client = client_for(stub, max_response_bytes=1000)
    with pytest.raises(NexusApiError) as info:
        client.list_secrets()
    assert 'more than the 1000 bytes the client reads; refused' in info.value.message
    assert client.list_secrets() == []  # the next request gets a fresh connection


def test_server_messages_echoing_what_was_sent_are_masked(stub):
    stub.script = [err(400, 'value V4LUE-x rejected for tok-SECRET'), (401, 'login pw-SECRET refused')]
    client = client_for(stub)
    with pytest.raises(NexusApiError) as info:
        client.create_secret('a', 'V4LUE-x')
    assert info.value.message == 'value <redacted> rejected for <redacted>'
    with pytest.raises(NexusApiError) as info:
        client_for(stub, token=None, username='u', password='pw-SECRET').login()
    assert info.value.message == '"login <redacted> refused"'
