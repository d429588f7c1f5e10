"""nexus_audit_info and playbooks/audit_review.yml against a scripted sequence of requests on the
reference server: the counts are exactly the requests made, and the playbook fails above its limit."""

from __future__ import annotations

import datetime

import pytest

from tests.helpers.ansible import REPO, run_playbook

PLAYBOOK = REPO / 'playbooks' / 'audit_review.yml'


@pytest.fixture
def scripted(nexus_server):
    """6 creates, 5 reads (one path read twice), 2 listings and one read of a missing path."""
    client = nexus_server.client()
    for i in range(6):
        assert client.create('audit/s%d' % i, 'value-%d' % i).status_code == 201
    for path in ('audit/s0', 'audit/s1', 'audit/s2', 'audit/s3', 'audit/s0'):
        assert client.get(path).status_code == 200
    assert client.list().status_code == 200
    assert client.list(prefix='audit/').status_code == 200
    assert client.get('audit/missing').status_code == 404
    return nexus_server


def audit(ansible_module, server, **args):
    return ansible_module('nexus.secrets.nexus_audit_info', dict(args, url=server.url),
                          environment={'NEXUS_TOKEN': server.token()})


def test_counts_match_the_requests_made(ansible_module, scripted):
    out = audit(ansible_module, scripted, actions=['secret.read', 'secret.list', 'secret.create'])
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] is False
    assert out['by_action'] == {'secret.create': 6, 'secret.read': 6, 'secret.list': 2}
    assert out['entries'] == 14 and out['failed_requests'] == 1 and out['undated'] == 0
    admin = out['by_user']['admin-001']
    assert admin == {'total': 14, 'actions': {'secret.create': 6, 'secret.read': 6, 'secret.list': 2},
                     'paths': 7, 'failed': 1}
    assert out['top_users'] == [{'user': 'admin-001', 'total': 14}]
    assert 'value-' not in repr(out)  # counts only: no values, no entries


def test_filters_by_action_user_and_time(ansible_module, scripted):
    reads = audit(ansible_module, scripted, actions=['secret.read'])
    assert reads['by_action'] == {'secret.read': 6} and reads['entries'] == 6
    nobody = audit(ansible_module, scripted, users=['someone-else'])
    assert nobody['entries'] == 0 and nobody['by_user'] == {} and nobody['first'] is None
    future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert audit(ansible_module, scripted, since=future)['entries'] == 0
    assert audit(ansible_module, scripted, since='1h')['entries'] >= 14


def test_bad_since_and_a_non_admin_failure_are_clear(ansible_module, scripted):
    out = audit(ansible_module, scripted, since='yesterday')
    assert out['failed'] and 'since must be an RFC 3339 time' in out['msg']
    out = ansible_module('nexus.secrets.nexus_audit_info', {'url': scripted.url},
                         environment={'NEXUS_TOKEN': 'not-a-token'})
    assert out['failed'] and 'cannot read the audit log' in out['msg'] and 'token was rejected' in out['msg']


def test_review_playbook_fails_above_the_limit_and_passes_below(scripted):
    env = {'NEXUS_TOKEN': scripted.token()}
    over = run_playbook(PLAYBOOK, extra_vars={'nexus_audit_hosts': 'localhost', 'nexus_audit_url': scripted.url,
                                              'nexus_audit_max_reads': 5}, env=env)
    assert over.rc != 0
    assert 'admin-001 read 6 secrets' in over.stdout and '(limit 5)' in over.stdout
    under = run_playbook(PLAYBOOK, extra_vars={'nexus_audit_hosts': 'localhost', 'nexus_audit_url': scripted.url,
                                               'nexus_audit_max_reads': 6}, env=env)
    assert under.rc == 0, under.stdout
