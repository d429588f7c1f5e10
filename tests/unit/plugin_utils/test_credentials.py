"""Which credentials the action plugins take from the controller's environment, and which they leave alone."""

from __future__ import annotations

import pytest

from ansible_collections.nexus.secrets.plugins.plugin_utils._credentials import explain_missing, fill_credentials

BACKUP = {'backup_password': 'NEXUS_BACKUP_PASSWORD', 'key_password': 'NEXUS_KEY_PASSWORD'}
EXPORT = {'export_password': 'NEXUS_EXPORT_PASSWORD'}
CONTROLLER = {'NEXUS_BACKUP_PASSWORD': 'bp', 'NEXUS_KEY_PASSWORD': 'kp', 'NEXUS_EXPORT_PASSWORD': 'ep',
              'NEXUS_URL': 'https://nexus.example:9000', 'NEXUS_TOKEN': 'tok', 'NEXUS_API_KEY': 'key',
              'NEXUS_USERNAME': 'admin', 'NEXUS_PASSWORD': 'pw'}


def test_unset_options_come_from_the_controller():
    args, used = fill_credentials({'path': '/b'}, CONTROLLER, {}, BACKUP)
    assert args == {'path': '/b', 'backup_password': 'bp', 'key_password': 'kp'}
    assert sorted(used) == ['NEXUS_BACKUP_PASSWORD', 'NEXUS_KEY_PASSWORD']


@pytest.mark.parametrize('explicit', ['task', None])
def test_the_task_option_wins_and_empty_counts_as_unset(explicit):
    args, dummy = fill_credentials({'backup_password': explicit or ''}, CONTROLLER, {}, BACKUP)
    assert args['backup_password'] == (explicit or 'bp')


def test_the_task_environment_wins_over_the_controller():
    args, used = fill_credentials({}, CONTROLLER, {'NEXUS_BACKUP_PASSWORD': 'from-task-env'}, BACKUP)
    assert 'backup_password' not in args and 'NEXUS_BACKUP_PASSWORD' not in used
    assert args['key_password'] == 'kp'


def test_an_empty_controller_variable_is_unset():
    args, used = fill_credentials({}, {'NEXUS_BACKUP_PASSWORD': ''}, {}, BACKUP)
    assert args == {} and used == []


@pytest.mark.parametrize('env_names, expected', [
    (('NEXUS_TOKEN', 'NEXUS_API_KEY', 'NEXUS_USERNAME', 'NEXUS_PASSWORD'), {'token': 'tok'}),
    (('NEXUS_API_KEY', 'NEXUS_USERNAME', 'NEXUS_PASSWORD'), {'api_key': 'key'}),
    (('NEXUS_USERNAME', 'NEXUS_PASSWORD'), {'username': 'admin', 'password': 'pw'}),
    (('NEXUS_USERNAME',), {}),  # half a login is not used
])
def test_one_connection_credential_is_chosen(env_names, expected):
    env = dict((name, CONTROLLER[name]) for name in env_names)
    args, dummy = fill_credentials({}, env, {}, EXPORT, connection=True)
    assert args == expected


def test_half_a_login_on_the_task_is_completed_from_the_controller():
    args, used = fill_credentials({'username': 'me'}, CONTROLLER, {}, EXPORT, connection=True)
    assert args['username'] == 'me' and args['password'] == 'pw' and 'token' not in args and 'api_key' not in args
    assert 'NEXUS_USERNAME' not in used


@pytest.mark.parametrize('task_args, task_env', [
    ({'token': 'mine'}, {}), ({'api_key': 'mine'}, {}), ({'username': 'me', 'password': 'mine'}, {}),
    ({}, {'NEXUS_API_KEY': 'host-side'}), ({}, {'NEXUS_USERNAME': 'me', 'NEXUS_PASSWORD': 'x'}),
])
def test_a_credential_of_the_task_never_mixes_with_the_controllers(task_args, task_env):
    args, used = fill_credentials(task_args, CONTROLLER, task_env, EXPORT, connection=True)
    for option in ('token', 'api_key', 'username', 'password'):
        assert args.get(option) == task_args.get(option)
    assert args['url'] == CONTROLLER['NEXUS_URL'] and args['export_password'] == 'ep'
    assert not set(used) & {'NEXUS_TOKEN', 'NEXUS_API_KEY', 'NEXUS_USERNAME', 'NEXUS_PASSWORD'}


def test_the_missing_argument_message_names_the_variable():
    result = explain_missing({'failed': True, 'msg': 'missing required arguments: backup_password, dest'}, BACKUP)
    assert result['msg'].startswith('missing required arguments: backup_password, dest')
    assert 'backup_password (or NEXUS_BACKUP_PASSWORD)' in result['msg'] and "controller's environment" in result['msg']
    assert 'dest (or' not in result['msg']
    untouched = {'failed': True, 'msg': 'missing required arguments: dest'}
    assert explain_missing(dict(untouched), BACKUP) == untouched
    assert explain_missing({'changed': True, 'msg': 'fine'}, BACKUP) == {'changed': True, 'msg': 'fine'}
