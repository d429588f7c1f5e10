"""nexus_export/nexus_import against a hostile server: every answer is bounded in size, encoding and
time, and nothing the server echoes back leaks a secret into the results.

Each case runs the module as a child process (as on a managed host) and measures its peak RSS: the
module must fail with a clear ``msg`` within a memory bound that an unbounded client would blow.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.integration.export_import.hostile import (
    MIB,
    HostileServer,
    answer,
    endless,
    gzip_bomb,
    run_module_child,
    trickle,
)

# The module's interpreter, Ansible's module_utils and one refused 64 MiB answer fit well below this;
# each hostile answer below would take several times more if it were read whole.
RSS_BOUND = 200 * MIB


@pytest.fixture
def hostile():
    servers = []

    def start(behaviour):
        server = HostileServer(behaviour)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def export(server, tmp_path, **extra):
    args = dict(url=server.url, token='tok-' + secrets.token_hex(8), dest=str(tmp_path / 'out.json'),
                retries=0, timeout=5)
    args.update(extra)
    return run_module_child('nexus_export', args, tmp_path)


def listing_only(behaviour):
    """``behaviour`` for the listing, 404 for anything else."""
    def pick(request):
        if request['target'].startswith('/api/v1/secrets') and request['method'] == 'GET' \
                and request['target'].split('?')[0] == '/api/v1/secrets':
            return behaviour
        return answer(404, {'error': 'Not Found', 'message': 'secret not found'})
    return pick


@pytest.mark.parametrize('with_length', [True, False], ids=['announced', 'streamed'])
def test_oversized_listing_is_refused_with_bounded_memory(hostile, tmp_path, with_length):
    server = hostile(listing_only(endless(600 * MIB, with_length)))
    result, dummy, peak = export(server, tmp_path)
    assert result['failed'] is True
    assert 'refused (narrow a listing with a prefix)' in result['msg'], result['msg']
    assert peak < RSS_BOUND, peak
    assert not (tmp_path / 'out.json').exists()


def test_compressed_answer_is_refused_unread(hostile, tmp_path):
    bomb = gzip_bomb(300 * MIB)
    server = hostile(listing_only(answer(200, bomb, {'Content-Encoding': 'gzip'})))
    result, dummy, peak = export(server, tmp_path)
    assert result['failed'] is True
    assert 'compressed (Content-Encoding: gzip)' in result['msg'], result['msg']
    assert server.requests[0]['headers']['accept-encoding'] == 'identity'
    assert peak < RSS_BOUND, peak


def test_a_trickling_server_cannot_hold_a_request_past_its_deadline(hostile, tmp_path):
    # One byte every 0.4 s never trips the 1 s read timeout; only the whole-request deadline ends it.
    server = hostile(listing_only(trickle(40)))
    result, dummy, peak = export(server, tmp_path, timeout=1)
    assert result['failed'] is True
    assert 'no complete answer from %s within 3s' % server.url in result['msg'], result['msg']
    assert peak < RSS_BOUND, peak


def test_error_messages_never_echo_the_values_sent(hostile, tmp_path):
    canary = 'ECHO-CANARY-' + secrets.token_hex(6)
    plain = 'PLAIN-CANARY-' + secrets.token_hex(6)

    def behaviour(request):
        if request['method'] == 'GET' and request['target'].startswith('/api/v1/secrets?') \
                or request['target'] == '/api/v1/secrets':
            if request['method'] == 'GET':
                return answer(200, {'secrets': [], 'total': 0})
        body = request['body'] or {}
        value = body.get('value', '')
        auth = request['headers'].get('authorization', '')
        if body.get('path') == 'app/json':
            return answer(400, {'error': 'Bad Request',
                                'message': 'value %s rejected (escaped %s), auth %s' % (
                                    value, json.dumps(value)[1:-1], auth)})
        return answer(422, ('cannot store %s' % value).encode())

    server = hostile(behaviour)
    src = tmp_path / 'src.json'
    src.write_text(json.dumps({'exported_at': '2026-01-01T00:00:00Z', 'secrets': [
        {'path': 'app/json', 'value': canary + '"\u00e9', 'metadata': {}},
        {'path': 'app/text', 'value': plain},
    ]}))
    token = 'TOKEN-CANARY-' + secrets.token_hex(6)
    result, output, dummy = run_module_child(
        'nexus_import', dict(url=server.url, token=token, src=str(src), retries=0), tmp_path)
    assert result['failed'] is True and len(result['failures']) == 2, result
    reasons = dict((f['path'], f['reason']) for f in result['failures'])
    assert 'HTTP 400: value <redacted> rejected (escaped <redacted>), auth Bearer <redacted>' in reasons['app/json']
    assert reasons['app/text'].endswith('HTTP 422: cannot store <redacted>'), reasons
    for leaked in (canary, plain, token):
        assert leaked not in output


def test_oversized_src_is_refused_unread(tmp_path):
    src = tmp_path / 'huge.json'
    with open(str(src), 'wb') as fh:
        fh.write(b'{"secrets": [')
        fh.truncate(300 * MIB)  # sparse: no disk used
    result, dummy, peak = run_module_child(
        'nexus_import', dict(url='http://127.0.0.1:9', token='unused-token-value', src=str(src)), tmp_path)
    assert result['failed'] is True
    assert result['msg'] == ('src %s cannot be imported: it is %d bytes, more than the 256 MiB an export may '
                             'have (export fewer secrets per file with prefix); nothing was changed'
                             % (src, 300 * MIB)), result['msg']
    assert peak < RSS_BOUND, peak
