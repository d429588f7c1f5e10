"""Fault injection of the reference server: off by default, flags and environment, /health exempt."""

from __future__ import annotations

import collections

import pytest
import requests

from tests.nexus_server.checks import STATUS_TEXT
from tests.nexus_server.harness import login


def _statuses(url, n, token=None, path='/api/v1/secrets'):
    """Status of ``n`` requests, each on a fresh connection; 'dropped' when the server hung up."""
    counts = collections.Counter()
    headers = {'Authorization': 'Bearer ' + token} if token else {}
    for dummy in range(n):
        try:
            counts[requests.get(url + path, headers=headers, timeout=10).status_code] += 1
        except requests.ConnectionError:
            counts['dropped'] += 1
    return counts


def _token(url):
    for dummy in range(200):  # the login itself may be hit by a fault
        try:
            return login(url)
        except (RuntimeError, requests.ConnectionError):
            continue
    raise AssertionError('could not log in through the faults')


def test_faults_are_off_by_default(nexus_server):
    counts = _statuses(nexus_server.url, 60, nexus_server.token())
    assert counts == {200: 60}


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_error_rate_answers_500_and_503_json(nexus_server_factory, how):
    if how == 'flag':
        server = nexus_server_factory(faults={'error_rate': 0.5, 'seed': 7})
    else:
        server = nexus_server_factory(env={'NEXUS_FAULT_ERROR_RATE': '0.5', 'NEXUS_FAULT_SEED': '7'})
    token = _token(server.url)
    counts = _statuses(server.url, 120, token)
    assert set(counts) <= {200, 500, 503}
    assert counts[200] and counts[500] and counts[503]  # ~60 / ~30 / ~30 expected
    resp = None
    for dummy in range(100):
        resp = requests.get(server.url + '/api/v1/secrets', headers={'Authorization': 'Bearer ' + token})
        if resp.status_code != 200:
            break
    assert resp.json() == {'error': STATUS_TEXT[resp.status_code], 'message': 'injected fault'}
    assert _statuses(server.url, 40, path='/health') == {200: 40}  # health is exempt
    assert 'Fault injection enabled' in server.log_text()


def test_injected_error_happens_before_any_work(nexus_server_factory):
    server = nexus_server_factory(faults={'error_rate': 1.0})
    assert requests.get(server.url + '/health').status_code == 200
    resp = requests.post(server.url + '/api/v1/secrets', json={'path': 'never/created', 'value': 'v'})
    assert resp.status_code in (500, 503)  # even without auth: the fault comes first
    server.stop()
    server.faults = {}
    server.start()
    assert server.client().list().json()['total'] == 0


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_drop_rate_closes_connections_without_answer(nexus_server_factory, how):
    if how == 'flag':
        server = nexus_server_factory(faults={'drop_rate': 0.5, 'seed': 3})
    else:
        server = nexus_server_factory(env={'NEXUS_FAULT_DROP_RATE': '0.5', 'NEXUS_FAULT_SEED': '3'})
    token = _token(server.url)
    counts = _statuses(server.url, 60, token)
    assert set(counts) == {200, 'dropped'}
    assert _statuses(server.url, 30, path='/health') == {200: 30}


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_latency_is_added_to_api_requests_not_health(nexus_server_factory, how):
    """Checked through the server's own record of the delays it slept (no clock in the test)."""
    if how == 'flag':
        server = nexus_server_factory(faults={'latency_ms': 400})
    else:
        server = nexus_server_factory(env={'NEXUS_FAULT_LATENCY_MS': '400'})
    token = server.token()  # the login is an API request: delayed and recorded too
    assert server.fault_records() == [
        {'fault': 'latency', 'ms': 400.0, 'method': 'POST', 'path': '/api/v1/auth/login'}]
    for dummy in range(3):
        assert requests.get(server.url + '/health', timeout=10).status_code == 200
    assert len(server.fault_records()) == 1  # /health was answered without any delay
    headers = {'Authorization': 'Bearer ' + token}
    assert requests.get(server.url + '/api/v1/secrets', headers=headers, timeout=10).status_code == 200
    assert requests.get(server.url + '/api/v1/nothing', timeout=10).status_code == 404
    assert server.fault_records()[1:] == [
        {'fault': 'latency', 'ms': 400.0, 'method': 'GET', 'path': '/api/v1/secrets'},
        {'fault': 'latency', 'ms': 400.0, 'method': 'GET', 'path': '/api/v1/nothing'}]
    assert 'latency_ms=400' in server.log_text()


def test_fault_limit_ends_the_outage_and_every_fault_is_recorded(nexus_server_factory):
    server = nexus_server_factory(faults={'error_rate': 1.0, 'limit': 3})
    answers = [requests.get(server.url + '/api/v1/nothing', timeout=10).status_code for dummy in range(6)]
    assert all(code in (500, 503) for code in answers[:3]) and answers[3:] == [404, 404, 404]
    records = server.fault_records()
    assert [(r['fault'], r['status'], r['method'], r['path']) for r in records] == [
        ('error', code, 'GET', '/api/v1/nothing') for code in answers[:3]]


def test_no_record_without_faults(nexus_server):
    assert nexus_server.client().list().status_code == 200
    assert nexus_server.fault_records() == [] and not nexus_server.fault_log_path.exists()


def test_seed_makes_faults_reproducible(nexus_server_factory):
    sequences = []
    for dummy in range(2):
        server = nexus_server_factory(faults={'error_rate': 0.3, 'seed': 42})
        seq = []
        for dummy in range(40):
            seq.append(requests.get(server.url + '/api/v1/nothing').status_code)  # 404 unless a fault hits
        sequences.append(seq)
        server.stop()
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) - {404} and 404 in sequences[0]


def test_flags_win_over_environment(nexus_server_factory):
    server = nexus_server_factory(faults={'error_rate': 0}, env={'NEXUS_FAULT_ERROR_RATE': '1.0'})
    assert _statuses(server.url, 20, server.token()) == {200: 20}


def test_invalid_fault_settings_refuse_to_start(nexus_server_factory):
    from tests.nexus_server.harness import ServerStartError
    server = nexus_server_factory(start=False, faults={'error_rate': 1.5})
    with pytest.raises(ServerStartError):
        server.start(timeout=10)
    assert server.proc.returncode == 2
