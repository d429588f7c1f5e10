"""Which credential a task uses: explicit options beat the environment, and among environment
variables NEXUS_TOKEN beats NEXUS_API_KEY beats NEXUS_USERNAME/NEXUS_PASSWORD (the documented order).
Every pair of methods, explicit vs environment and environment vs environment."""

from __future__ import annotations

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._connection import (
    CredentialError,
    resolve_credentials,
)

TOKEN = dict(token='T')
API_KEY = dict(api_key='K')
USERPASS = dict(username='U', password='P')
ENV = {'token': 'NEXUS_TOKEN', 'api_key': 'NEXUS_API_KEY', 'username': 'NEXUS_USERNAME',
       'password': 'NEXUS_PASSWORD'}


def method_of(creds):
    return 'token' if 'token' in creds else 'api_key' if 'api_key' in creds else 'username/password'


def as_env(creds, mark='env-'):
    return dict((ENV[name], mark + value) for name, value in creds.items())


def as_params(creds, mark='opt-'):
    params = dict(token=None, api_key=None, username=None, password=None)
    params.update((name, mark + value) for name, value in creds.items())
    return params


def expect(method, mark):
    if method == 'token':
        return 'token', dict(token=mark + 'T', api_key=None, username=None, password=None)
    if method == 'api_key':
        return 'api_key', dict(token=None, api_key=mark + 'K', username=None, password=None)
    return 'username/password', dict(token=None, api_key=None, username=mark + 'U', password=mark + 'P')


PAIRS = [(TOKEN, API_KEY), (TOKEN, USERPASS), (API_KEY, USERPASS)]
NAMES = ['token-api_key', 'token-userpass', 'api_key-userpass']


@pytest.mark.parametrize('first, second', PAIRS, ids=NAMES)
def test_explicit_beats_environment_both_ways(first, second):
    for explicit, env in ((first, second), (second, first)):
        got = resolve_credentials(as_params(explicit), as_env(env))
        assert got == expect(method_of(explicit), 'opt-')


@pytest.mark.parametrize('first, second', PAIRS, ids=NAMES)
def test_environment_order_is_the_documented_one(first, second):
    env = as_env(first)
    env.update(as_env(second))
    winner = method_of(dict(first, **second))
    assert resolve_credentials(as_params({}), env) == expect(winner, 'env-')


def test_all_three_in_the_environment_token_wins_then_api_key():
    env = dict(as_env(TOKEN), **as_env(API_KEY))
    env.update(as_env(USERPASS))
    assert resolve_credentials(as_params({}), env)[0] == 'token'
    env['NEXUS_TOKEN'] = ''  # AWX sets unset inputs to ''
    assert resolve_credentials(as_params({}), env)[0] == 'api_key'
    env['NEXUS_API_KEY'] = ''
    assert resolve_credentials(as_params({}), env) == expect('username/password', 'env-')


@pytest.mark.parametrize('explicit, env, user, password', [
    ({'username': 'opt-U'}, {'NEXUS_PASSWORD': 'env-P'}, 'opt-U', 'env-P'),
    ({'password': 'opt-P'}, {'NEXUS_USERNAME': 'env-U'}, 'env-U', 'opt-P'),
    ({'username': 'opt-U', 'password': 'opt-P'}, {'NEXUS_USERNAME': 'env-U', 'NEXUS_PASSWORD': 'env-P'},
     'opt-U', 'opt-P'),
])
def test_environment_completes_an_explicit_username_password_pair(explicit, env, user, password):
    params = as_params({})
    params.update(explicit)
    assert resolve_credentials(params, env) == ('username/password', dict(
        token=None, api_key=None, username=user, password=password))


@pytest.mark.parametrize('params, env, missing', [
    ({'username': 'u'}, {}, 'password is not'),
    ({}, {'NEXUS_PASSWORD': 'p'}, 'username is not'),
    ({'password': 'p'}, {'NEXUS_TOKEN': 't'}, 'username is not'),  # explicit beats env: no token
])
def test_half_a_pair_is_a_clear_error(params, env, missing):
    full = as_params({})
    full.update(params)
    with pytest.raises(CredentialError, match=missing):
        resolve_credentials(full, env)


def test_nothing_set_is_none_and_empty_values_are_unset():
    assert resolve_credentials(as_params({}), {}) == (None, {})
    params = dict(token='', api_key='', username='', password='')
    assert resolve_credentials(params, {'NEXUS_TOKEN': '', 'NEXUS_API_KEY': 'k'})[0] == 'api_key'
