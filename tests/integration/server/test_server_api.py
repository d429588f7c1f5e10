"""docs/nexus-behaviour.md §4: the REST API of the reference server, both storages, real HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.nexus_server.checks import error_body

RFC3339 = '%Y-%m-%dT%H:%M:%S'


def parse_rfc3339(text):
    assert text.endswith('Z'), text
    base, dummy, frac = text[:-1].partition('.')
    assert len(frac) <= 9 and (not frac or not frac.endswith('0')), text  # Go trims trailing zeros
    return datetime.strptime(base, RFC3339).replace(tzinfo=timezone.utc)


def jwt_parts(token):
    def dec(part):
        return json.loads(base64.urlsafe_b64decode(part + '=' * (-len(part) % 4)))
    header, payload, dummy = token.split('.')
    return dec(header), dec(payload)


# -- auth ------------------------------------------------------------------------------------------

def test_login_returns_token_expiry_and_user(sqlite_server):
    resp = requests.post(sqlite_server.url + '/api/v1/auth/login', json={'username': 'admin', 'password': 'admin'})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {'token', 'expires_at', 'user'}
    assert body['user'] == {'id': 'admin-001', 'name': 'Admin User', 'role': 'admin'}
    header, claims = jwt_parts(body['token'])
    assert header['alg'] == 'HS256'
    assert claims['user_id'] == 'admin-001' and claims['role'] == 'admin'
    exp, iat = parse_rfc3339(claims['exp']), parse_rfc3339(claims['iat'])  # strings, not numbers
    assert exp - iat == timedelta(hours=24)
    assert abs(parse_rfc3339(body['expires_at']) - exp) < timedelta(seconds=1)
    assert abs(iat - datetime.now(timezone.utc)) < timedelta(minutes=5)


@pytest.mark.parametrize('body,status,message', [
    ({'username': 'admin', 'password': 'wrong'}, 401, 'invalid credentials'),
    ({'username': 'nobody', 'password': 'admin'}, 401, 'invalid credentials'),
    ({'username': 'admin'}, 400, 'username and password are required'),
    ({'password': 'admin'}, 400, 'username and password are required'),
    ({'username': '', 'password': ''}, 400, 'username and password are required'),
])
def test_login_failures(sqlite_server, body, status, message):
    resp = requests.post(sqlite_server.url + '/api/v1/auth/login', json=body)
    error_body(resp, status, message)


def test_login_bad_json(sqlite_server):
    resp = requests.post(sqlite_server.url + '/api/v1/auth/login', data='{not json',
                         headers={'Content-Type': 'application/json'})
    error_body(resp, 400, 'invalid request body')


@pytest.mark.parametrize('method,path', [
    ('GET', '/api/v1/secrets'), ('POST', '/api/v1/secrets'), ('GET', '/api/v1/secrets/a/b'),
    ('PUT', '/api/v1/secrets/a/b'), ('DELETE', '/api/v1/secrets/a/b'), ('GET', '/api/v1/secrets/a/b/versions'),
    ('GET', '/api/v1/audit'),
])
@pytest.mark.parametrize('auth', [
    {}, {'Authorization': 'Bearer not-a-jwt'}, {'Authorization': 'Bearer a.b.c'},
    {'X-API-Key': 'nxk_unknown'}, {'Authorization': 'Basic YWRtaW46YWRtaW4='},
])
def test_missing_or_invalid_auth_is_401(sqlite_server, method, path, auth):
    resp = requests.request(method, sqlite_server.url + path, headers=auth, json={'path': 'a/b', 'value': 'v'})
    error_body(resp, 401, 'authentication required')


def test_forged_and_expired_tokens_are_rejected(sqlite_server):
    token = sqlite_server.token()
    header, payload, sig = token.split('.')
    claims = jwt_parts(token)[1]
    claims['role'] = 'superuser'
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b'=').decode()
    resp = sqlite_server.client(token='.'.join([header, forged_payload, sig])).list()
    error_body(resp, 401, 'authentication required')
    from tests.nexus_server import tokens  # the server's fixed secret: a well-signed but expired token
    old, dummy = tokens.issue('admin-001', 'admin', now_ns=time.time_ns() - 25 * 3600 * 10 ** 9)
    error_body(sqlite_server.client(token=old).list(), 401, 'authentication required')


def test_api_key_header_and_query(any_server, unique):
    resp = any_server.client().create_api_key('ci')
    assert resp.status_code == 201, resp.text
    key = resp.json()['key']
    assert any_server.client().create(unique + '/k', 'v').status_code == 201
    by_header = requests.get(any_server.url + '/api/v1/secrets/%s/k' % unique, headers={'X-API-Key': key})
    assert by_header.status_code == 200 and by_header.json()['value'] == 'v'
    by_query = requests.get(any_server.url + '/api/v1/secrets/%s/k' % unique, params={'api_key': key})
    assert by_query.status_code == 200 and by_query.json()['value'] == 'v'
    assert any_server.client(api_key=key).list(prefix=unique).json()['total'] == 1


def test_token_survives_restarts_and_works_on_other_instances(nexus_server_factory):
    first = nexus_server_factory()
    token = first.token()
    key = first.client().create_api_key('short-lived').json()['key']
    assert first.client(api_key=key).list().status_code == 200
    first.restart()
    assert first.client(token=token).list().status_code == 200  # fixed signing secret
    error_body(first.client(api_key=key).list(), 401, 'authentication required')  # API keys lived in memory
    other = nexus_server_factory(storage='memory')
    assert other.client(token=token).list().status_code == 200


def test_create_api_key_needs_auth(sqlite_server):
    error_body(sqlite_server.anonymous().create_api_key(), 401, 'authentication required')


# -- create ----------------------------------------------------------------------------------------

def test_create_returns_201_without_value(any_server, unique):
    resp = any_server.client().create(unique + '/db/password', 's3cret', {'owner': 'ops'})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert list(body) == ['id', 'path', 'metadata', 'version', 'created_at', 'created_by', 'updated_at',
                          'updated_by']
    assert body['path'] == unique + '/db/password'
    assert body['metadata'] == {'owner': 'ops'}
    assert body['version'] == 1
    assert body['created_by'] == body['updated_by'] == 'admin-001'
    assert parse_rfc3339(body['created_at']) == parse_rfc3339(body['updated_at'])
    assert 'value' not in body


@pytest.mark.parametrize('body,message', [
    ({'path': 'x/empty-value', 'value': ''}, 'value is required'),
    ({'path': 'x/no-value'}, 'value is required'),
    ({'path': '', 'value': 'v'}, 'path is required'),
    ({'value': 'v'}, 'path is required'),
])
def test_create_validation(any_server, body, message):
    error_body(any_server.client().request('POST', '/api/v1/secrets', json=body), 400, message)


@pytest.mark.parametrize('raw', ['{bad json', '[1, 2]', '{"path": "a", "value": 5}',
                                 '{"path": "a", "value": "v", "metadata": {"n": 1}}'])
def test_create_bad_body(any_server, raw):
    resp = any_server.client().request('POST', '/api/v1/secrets', data=raw,
                                       headers={'Content-Type': 'application/json'})
    error_body(resp, 400, 'invalid request body')


def test_create_existing_path_sqlite_500(sqlite_server, unique):
    client = sqlite_server.client()
    assert client.create(unique, 'one').status_code == 201
    error_body(client.create(unique, 'two'), 500, 'failed to create secret')
    assert client.get(unique).json()['value'] == 'one'


def test_create_existing_path_memory_409(memory_server, unique):
    client = memory_server.client()
    assert client.create(unique, 'one').status_code == 201
    error_body(client.create(unique, 'two'), 409, 'secret already exists')
    assert client.get(unique).json()['value'] == 'one'


@pytest.mark.parametrize('storage,status,message', [
    ('sqlite', 500, 'failed to create secret'), ('memory', 409, 'secret already exists')])
def test_soft_delete_burns_the_path(request, storage, status, message, unique):
    client = request.getfixturevalue(storage + '_server').client()
    assert client.create(unique, 'v1').status_code == 201
    assert client.delete(unique).status_code == 204
    error_body(client.create(unique, 'v2'), status, message)
    error_body(client.get(unique), 404, 'secret not found')
    assert client.list(prefix=unique).json() == {'secrets': [], 'total': 0}


# -- read / update / delete -----------------------------------------------------------------------

def test_get_returns_value_and_404(any_server, unique):
    client = any_server.client()
    value = 'multi\nline "quoted" \\ \t héllo 秘密 🔐'
    created = client.create(unique + '/v', value, {'k': 'v'}).json()
    resp = client.get(unique + '/v')
    assert resp.status_code == 200
    body = resp.json()
    assert list(body) == ['id', 'path', 'value', 'metadata', 'version', 'created_at', 'created_by',
                          'updated_at', 'updated_by']
    assert body['value'] == value
    assert body['id'] == created['id']
    error_body(client.get(unique + '/missing'), 404, 'secret not found')


def test_metadata_omitted_when_empty(any_server, unique):
    client = any_server.client()
    for path, meta in ((unique + '/none', None), (unique + '/empty', {})):
        assert 'metadata' not in client.create(path, 'v', meta).json()
        assert 'metadata' not in client.get(path).json()
    listed = client.list(prefix=unique).json()['secrets']
    assert listed and all('metadata' not in s for s in listed)


def test_put_always_creates_a_new_version(any_server, unique):
    client = any_server.client()
    client.create(unique, 'v1', {'a': '1'})
    steps = [({'value': 'v2'}, 'v2', {'a': '1'}),
             ({}, 'v2', {'a': '1'}),  # nothing changed: still a new version
             ({'value': 'v2'}, 'v2', {'a': '1'}),  # same value again
             ({'metadata': {'b': '2'}}, 'v2', {'b': '2'}),  # metadata replaced, value kept
             ({'value': 'v3', 'metadata': {'c': '3'}}, 'v3', {'c': '3'})]
    for n, (body, value, meta) in enumerate(steps, start=2):
        resp = client.request('PUT', '/api/v1/secrets/' + unique, json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()['version'] == n
        got = client.get(unique).json()
        assert (got['version'], got['value'], got['metadata']) == (n, value, meta)
        assert got['updated_at'] >= got['created_at']


def test_put_empty_metadata_clears_it(any_server, unique):
    client = any_server.client()
    client.create(unique, 'v', {'a': '1'})
    resp = client.put(unique, metadata={})
    assert resp.status_code == 200 and 'metadata' not in resp.json()
    got = client.get(unique).json()
    assert 'metadata' not in got and got['value'] == 'v' and got['version'] == 2


def test_put_unknown_or_deleted_is_404(any_server, unique):
    client = any_server.client()
    error_body(client.put(unique + '/nope', value='x'), 404, 'secret not found')
    client.create(unique + '/gone', 'v')
    client.delete(unique + '/gone')
    error_body(client.put(unique + '/gone', value='x'), 404, 'secret not found')


def test_put_bad_body(any_server, unique):
    client = any_server.client()
    client.create(unique, 'v')
    resp = client.request('PUT', '/api/v1/secrets/' + unique, data='nope', headers={'Content-Type': 'application/json'})
    error_body(resp, 400, 'invalid request body')


def test_delete_204_then_404(any_server, unique):
    client = any_server.client()
    client.create(unique, 'v')
    resp = client.delete(unique)
    assert resp.status_code == 204 and resp.content == b''
    error_body(client.get(unique), 404, 'secret not found')
    error_body(client.delete(unique), 404, 'secret not found')
    error_body(client.versions(unique), 404, 'secret not found')


def test_versions_newest_first_without_values(any_server, unique):
    client = any_server.client()
    created = client.create(unique, 'v1').json()
    client.put(unique, value='v2')
    client.put(unique, metadata={'m': 'x'})
    body = client.versions(unique).json()
    assert body['total'] == 3
    assert [v['version'] for v in body['versions']] == [3, 2, 1]
    for entry in body['versions']:
        assert set(entry) == {'id', 'secret_id', 'version', 'created_at', 'created_by'}
        assert entry['secret_id'] == created['id'] and entry['created_by'] == 'admin-001'
    assert len({v['id'] for v in body['versions']}) == 3
    error_body(client.versions(unique + '/missing'), 404, 'secret not found')


# -- list ------------------------------------------------------------------------------------------

def test_list_shape_never_has_values(any_server, unique):
    client = any_server.client()
    client.create(unique + '/a', 'va', {'x': 'y'})
    client.create(unique + '/b', 'vb')
    body = client.list(prefix=unique).json()
    assert set(body) == {'secrets', 'total'} and body['total'] == 2
    for item in body['secrets']:
        assert 'value' not in item
        assert set(item) - {'metadata'} == {'id', 'path', 'version', 'created_at', 'created_by', 'updated_at',
                                            'updated_by'}
    everything = client.list().json()
    assert everything['total'] == len(everything['secrets']) >= 2


def _seed_prefix_cases(client, base):
    paths = [base + '/app/x', base + '/App/y', base + '/apple', base + '/a_p/z', base + '/a%p/w', base + '/ap/v']
    for p in paths:
        assert client.create(p, 'v').status_code == 201
    return paths


def test_list_sqlite_ordered_like_prefix(sqlite_server, unique):
    client = sqlite_server.client()
    base = unique.lower()
    _seed_prefix_cases(client, base)

    def listed(prefix):
        body = client.list(prefix=prefix).json()
        paths = [s['path'] for s in body['secrets']]
        assert body['total'] == len(paths)
        assert paths == sorted(paths)  # ORDER BY path (binary collation)
        return set(paths)

    # case-insensitive, and '_' / '%' are LIKE wildcards
    assert listed(base + '/app') == {base + '/app/x', base + '/App/y', base + '/apple'}
    assert listed(base.upper() + '/APP/') == {base + '/app/x', base + '/App/y'}
    assert listed(base + '/a_p') == {base + '/app/x', base + '/App/y', base + '/apple', base + '/a_p/z',
                                     base + '/a%p/w'}
    assert listed(base + '/a%/') == {base + '/app/x', base + '/App/y', base + '/a_p/z', base + '/a%p/w',
                                     base + '/ap/v'}
    assert listed(base + '/zzz') == set()


def test_list_memory_literal_prefix(memory_server, unique):
    client = memory_server.client()
    base = unique.lower()
    _seed_prefix_cases(client, base)

    def listed(prefix):
        return {s['path'] for s in client.list(prefix=prefix).json()['secrets']}

    assert listed(base + '/app') == {base + '/app/x', base + '/apple'}  # case-sensitive
    assert listed(base.upper() + '/APP') == set()
    assert listed(base + '/a_p') == {base + '/a_p/z'}  # '_' is literal
    assert listed(base + '/a%') == {base + '/a%p/w'}  # '%' is literal


def test_list_memory_order_is_random(memory_server, unique):
    client = memory_server.client()
    for i in range(12):
        client.create('%s/%02d' % (unique, i), 'v')
    orders = {tuple(s['path'] for s in client.list(prefix=unique).json()['secrets']) for dummy in range(8)}
    assert len(orders) > 1  # 8 draws of a random order of 12 items: equal by chance ~ (1/12!)^7
    assert all(sorted(o) == sorted(next(iter(orders))) for o in orders)


def test_list_sqlite_order_is_stable_and_sorted(sqlite_server, unique):
    client = sqlite_server.client()
    for i in (5, 1, 9, 3):
        client.create('%s/%02d' % (unique, i), 'v')
    first = [s['path'] for s in client.list(prefix=unique).json()['secrets']]
    assert first == ['%s/%02d' % (unique, i) for i in (1, 3, 5, 9)]
    assert first == [s['path'] for s in client.list(prefix=unique).json()['secrets']]


# -- unreachable paths ----------------------------------------------------------------------------

# What the server answers to each unreachable path, sent verbatim (requests/urllib3 would remove dot
# segments before sending): the versions route of its parent, or a 301 to the cleaned path.
UNREACHABLE = [
    # suffix of the secret's path, status, and the secret the answer is about: Location (301) or parent (404)
    ('/ends/versions', 404, '{u}/ends'),
    ('//leading', 301, '{u}/leading'),
    ('/double//slash', 301, '{u}/double/slash'),
    ('/dot/./seg', 301, '{u}/dot/seg'),
    ('/dotdot/../seg', 301, '{u}/seg'),
    ('/trailing/.', 301, '{u}/trailing'),
    ('/trailing/..', 301, '{u}'),
]


def raw_get(server, url_path):
    """``GET url_path`` sent byte for byte, redirects not followed: ``(status, Location, JSON body or None)``."""
    conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=10)
    try:
        conn.request('GET', url_path, headers={'Authorization': 'Bearer ' + server.token()})
        resp = conn.getresponse()
        body = resp.read()
        data = json.loads(body) if resp.getheader('Content-Type', '').startswith('application/json') else None
        return resp.status, resp.getheader('Location'), data
    finally:
        conn.close()


@pytest.mark.parametrize('suffix,status,about', UNREACHABLE, ids=[case[0] for case in UNREACHABLE])
def test_unreachable_paths_can_be_created_but_not_read(any_server, unique, suffix, status, about):
    client = any_server.client()
    path = (unique + suffix) if not suffix.startswith('//') else '/' + unique + suffix[1:]
    resp = client.create(path, 'hidden')
    assert resp.status_code == 201, resp.text
    assert any(s['path'] == path for s in client.list().json()['secrets'])
    got, location, body = raw_get(any_server, '/api/v1/secrets/' + path)
    assert got == status, (got, location, body)
    if status == 301:
        assert location == '/api/v1/secrets/' + about.format(u=unique)
    else:  # the versions route of a parent that does not exist
        assert location is None and body == {'error': 'Not Found', 'message': 'secret not found'}
    followed = client.get(path)  # a browser-style client: whatever it reads, it is not this secret
    error_body(followed, 404, 'secret not found')


@pytest.mark.parametrize('method', ['GET', 'PUT', 'DELETE'])
def test_an_empty_secret_path_is_400(any_server, method):
    client = any_server.client()
    resp = client.request(method, '/api/v1/secrets/', json={'value': 'v'} if method == 'PUT' else None)
    error_body(resp, 400, 'secret path is required')
    anonymous = any_server.anonymous().request(method, '/api/v1/secrets/')
    error_body(anonymous, 401, 'authentication required')  # authentication comes first


def test_the_versions_of_an_empty_secret_path_is_400(any_server):
    got, location, body = raw_get(any_server, '/api/v1/secrets//versions')
    assert (got, location) == (400, None) and body == {'error': 'Bad Request', 'message': 'secret path is required'}
    error_body(any_server.client().request('GET', '/api/v1/secrets//versions'), 400, 'secret path is required')


def test_unreachable_path_redirects_like_go_mux(sqlite_server, unique):
    client = sqlite_server.client()
    client.create('/' + unique, 'v')
    raw = client.get('/' + unique, allow_redirects=False)
    assert raw.status_code == 301
    assert raw.headers['Location'] == '/api/v1/secrets/' + unique
    followed = client.get('/' + unique)
    error_body(followed, 404, 'secret not found')  # the cleaned path names another (absent) secret


@pytest.mark.parametrize('sent,location', [
    ('/api/v1/secrets/a/./b', '/api/v1/secrets/a/b'),
    ('/api/v1/secrets/a/../b', '/api/v1/secrets/b'),
    ('/api/v1/secrets/a//b', '/api/v1/secrets/a/b'),
    ('/api/v1/secrets/a/b/.', '/api/v1/secrets/a/b'),
    ('/api/v1/secrets/a/b/..', '/api/v1/secrets/a'),
    ('/api/v1/secrets/../../x/', '/api/x/'),
    ('/api/v1/secrets/a%2F%2Fb?x=1', '/api/v1/secrets/a/b?x=1'),  # decoded before cleaning, like Go
])
def test_path_cleaning_redirects_verbatim_requests(sqlite_server, sent, location):
    """Sent byte for byte (requests/urllib3 would remove dot segments before sending)."""
    conn = http.client.HTTPConnection('127.0.0.1', sqlite_server.port, timeout=10)
    try:
        conn.request('GET', sent, headers={'Authorization': 'Bearer ' + sqlite_server.token()})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 301 and resp.getheader('Location') == location
    finally:
        conn.close()


def test_versions_suffix_reads_the_parent_versions(any_server, unique):
    client = any_server.client()
    client.create(unique, 'parent')
    client.create(unique + '/versions', 'child')
    resp = client.get(unique + '/versions')
    assert resp.status_code == 200 and 'value' not in resp.json()
    assert resp.json()['total'] == 1 and resp.json()['versions'][0]['version'] == 1


def test_reachable_odd_paths_round_trip(any_server, unique):
    client = any_server.client()
    for suffix in ('/with space', '/q?mark', '/hash#tag', '/pct%41', '/plus+sign', '/.hidden/x', '/a..b',
                   '/trailing/', '/ünï/秘密'):
        path = unique + suffix
        assert client.create(path, 'v' + suffix).status_code == 201
        got = client.get(path)
        assert got.status_code == 200, (path, got.text)
        assert got.json()['value'] == 'v' + suffix and got.json()['path'] == path


# -- audit -----------------------------------------------------------------------------------------

def test_audit_lists_successes_and_failures(any_server, unique):
    client = any_server.client()
    client.create(unique, 'v')
    client.get(unique)
    client.get(unique + '/missing')
    resp = client.audit()
    assert resp.status_code == 200
    logs = resp.json()['logs']
    assert resp.json()['total'] == len(logs)
    mine = [e for e in logs if (e.get('secret_path') or '').startswith(unique)]
    actions = {(e['action'], e['success']) for e in mine}
    assert ('secret.create', True) in actions and ('secret.read', True) in actions
    failed = [e for e in mine if not e['success']]
    assert failed and failed[0]['error'] and failed[0]['secret_path'] == unique + '/missing'
    for entry in mine:
        assert entry['user'] == 'admin-001' and entry['ip_address'] == '127.0.0.1'
        assert len(bytes.fromhex(entry['signature'])) == 64  # Ed25519


def test_audit_failures_not_in_server_log(sqlite_server, unique):
    client = sqlite_server.client()
    client.get(unique + '/missing-secret-for-log-check')
    client.audit()
    assert 'missing-secret-for-log-check' not in sqlite_server.log_text()


def test_audit_is_admin_only(sqlite_server):
    from tests.nexus_server import tokens
    reader, dummy = tokens.issue('reader-001', 'reader')
    error_body(sqlite_server.client(token=reader).audit(), 403, 'admin access required')
    error_body(sqlite_server.anonymous().audit(), 401, 'authentication required')


# -- HTTP behaviour --------------------------------------------------------------------------------

def test_health_needs_no_auth(any_server):
    resp = requests.get(any_server.url + '/health')
    assert resp.status_code == 200
    body = resp.json()
    assert body['status'] == 'healthy' and set(body) == {'status', 'timestamp'}
    parse_rfc3339(body['timestamp'])


def test_unknown_route_is_json_404(sqlite_server):
    resp = sqlite_server.client().request('GET', '/api/v1/nothing-here')
    assert resp.status_code == 404 and set(resp.json()) == {'error', 'message'}


def test_keep_alive_serves_many_requests_on_one_connection(sqlite_server, unique):
    conn = http.client.HTTPConnection('127.0.0.1', sqlite_server.port, timeout=10)
    headers = {'Authorization': 'Bearer ' + sqlite_server.token(), 'Content-Type': 'application/json'}
    for i in range(20):
        conn.request('POST', '/api/v1/secrets', json.dumps({'path': '%s/%d' % (unique, i), 'value': 'v'}), headers)
        resp = conn.getresponse()
        assert resp.status == 201 and int(resp.headers['Content-Length']) == len(resp.read())
    sock = conn.sock
    conn.request('GET', '/api/v1/secrets?prefix=' + unique, headers=headers)
    resp = conn.getresponse()
    assert json.loads(resp.read())['total'] == 20
    assert conn.sock is sock  # same TCP connection throughout
    conn.close()


def test_concurrent_writes_do_not_fail(any_server, unique):
    """8 parallel keep-alive clients: no 'database is locked'; concurrent PUTs may lose versions."""
    errors = []
    token = any_server.token()

    def work(n):
        client = any_server.client(token=token)
        for i in range(15):
            for resp in (client.create('%s/w%d/%d' % (unique, n, i), 'v'),
                         client.put(unique + '/shared', value=str(i))):
                if resp.status_code not in (200, 201):
                    errors.append((resp.status_code, resp.text))
        client.close()

    any_server.client().create(unique + '/shared', 'v0')
    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    client = any_server.client()
    assert client.list(prefix=unique + '/w').json()['total'] == 8 * 15
    shared = client.get(unique + '/shared').json()
    assert 2 <= shared['version'] <= 1 + 8 * 15
    assert client.versions(unique + '/shared').json()['total'] <= shared['version']
