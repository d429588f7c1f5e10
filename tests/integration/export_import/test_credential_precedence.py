"""Credential precedence through the real module and a real server: explicit options beat the
environment, NEXUS_TOKEN beats NEXUS_API_KEY beats NEXUS_USERNAME/NEXUS_PASSWORD, and no combination
is refused as "mutually exclusive" unless the task itself sets two methods. A bogus credential on the
losing side proves which one was used; credentials from the environment stay out of the output."""

from __future__ import annotations

import pytest

from tests.integration.export_import.hostile import run_module_child

BOGUS_TOKEN = 'bogus-token-' + 'x' * 20
BOGUS_KEY = 'bogus-api-key-' + 'y' * 20


@pytest.fixture
def creds(nexus_server):
    resp = nexus_server.client().create_api_key()
    assert resp.status_code in (200, 201), resp.text
    return dict(url=nexus_server.url, token=nexus_server.token(), api_key=resp.json()['key'])


def export(creds, tmp_path, args, env):
    result, output, dummy = run_module_child(
        'nexus_export', dict(args, url=creds['url'], dest=str(tmp_path / 'out.json'), prefix='none/', retries=0),
        tmp_path, env=env)
    return result, output


@pytest.mark.parametrize('case', [
    'env token beats env api_key', 'explicit token beats env api_key', 'explicit api_key beats env token',
    'explicit username/password beat env token and api_key', 'env api_key beats env username/password',
    'explicit username completed by env password',
])
def test_the_winning_credential_is_used(creds, tmp_path, case):
    args, env = {
        'env token beats env api_key': ({}, dict(NEXUS_TOKEN=creds['token'], NEXUS_API_KEY=BOGUS_KEY)),
        'explicit token beats env api_key': (dict(token=creds['token']), dict(NEXUS_API_KEY=BOGUS_KEY)),
        'explicit api_key beats env token': (dict(api_key=creds['api_key']), dict(NEXUS_TOKEN=BOGUS_TOKEN)),
        'explicit username/password beat env token and api_key': (
            dict(username='admin', password='admin'), dict(NEXUS_TOKEN=BOGUS_TOKEN, NEXUS_API_KEY=BOGUS_KEY)),
        'env api_key beats env username/password': (
            {}, dict(NEXUS_API_KEY=creds['api_key'], NEXUS_USERNAME='admin', NEXUS_PASSWORD='wrong')),
        'explicit username completed by env password': (
            dict(username='admin'), dict(NEXUS_PASSWORD='admin', NEXUS_TOKEN=BOGUS_TOKEN)),
    }[case]
    result, output = export(creds, tmp_path, args, env)
    assert not result.get('failed'), result.get('msg')
    assert result['count'] == 0
    for name in ('NEXUS_TOKEN', 'NEXUS_API_KEY'):
        if name in env and not env[name].startswith('bogus'):
            assert env[name] not in output  # an environment credential is no_log like an option


def test_env_token_wins_even_when_it_is_the_bad_one(creds, tmp_path):
    result, output = export(creds, tmp_path, {}, dict(NEXUS_TOKEN=BOGUS_TOKEN, NEXUS_API_KEY=creds['api_key']))
    assert result['failed'] is True and result['status'] == 401
    assert '(the token was rejected' in result['msg']
    assert BOGUS_TOKEN not in output and creds['api_key'] not in output


def test_two_methods_set_on_the_task_are_still_refused(creds, tmp_path):
    result, dummy = export(creds, tmp_path, dict(token=creds['token'], api_key=creds['api_key']), {})
    assert result['failed'] is True and 'mutually exclusive' in result['msg']


def test_half_a_pair_is_a_clear_error(creds, tmp_path):
    result, dummy = export(creds, tmp_path, {}, dict(NEXUS_USERNAME='admin'))
    assert result['failed'] is True
    assert result['msg'] == 'username is set but password is not (set password or NEXUS_PASSWORD)'
