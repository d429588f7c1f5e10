"""nexus.secrets.nexus_info against the reference server: health, each credential, count, reads,
unreachable paths, and the API-key-after-restart explanation."""

from __future__ import annotations

from tests.helpers.ansible import run_module

INFO = 'nexus.secrets.nexus_info'
VALUES = ['first-value-1', 'second-value-2', 'third-value-3']


def seed(server):
    client = server.client()
    for index, value in enumerate(VALUES):
        assert client.create('app/s%d' % index, value).status_code == 201
    # Stored, listed, but never served by the API (docs/nexus-behaviour.md §4).
    assert client.create('app/versions', 'unservable').status_code == 201


def test_token_reads_all_and_classifies_unreachable(nexus_server):
    seed(nexus_server)
    out = run_module(INFO, dict(url=nexus_server.url, token=nexus_server.token(), read='all', expected_count=4,
                                fail_on_problems=True))
    assert out['ok'] and not out['changed'] and out['problems'] == [], out
    assert out['health']['status'] == 'healthy'
    assert out['auth'] == {'method': 'token', 'ok': True, 'detail': 'accepted'}
    assert out['count'] == 4 and out['checked'] == 3 and out['unreadable'] == []
    assert [u['path'] for u in out['unreachable_paths']] == ['app/versions']
    text = out['_run'].stdout + out['_run'].stderr
    assert not any(v in text for v in VALUES + ['unservable'])

    out = run_module(INFO, dict(url=nexus_server.url, username='admin', password='admin', read='one',
                                prefix='app/s', expected_count=5))
    assert not out.get('failed') and not out['ok'] and out['checked'] == 1 and out['count'] == 3
    assert out['problems'] == ["the server lists 3 live secrets under 'app/s', 5 expected"]


def test_api_key_after_restart_is_explained(nexus_server):
    seed(nexus_server)
    key = nexus_server.client().create_api_key().json()['key']
    out = run_module(INFO, dict(url=nexus_server.url, api_key=key, read='none'))
    assert out['ok'] and out['count'] == 4 and out['checked'] == 0
    nexus_server.restart()
    out = run_module(INFO, dict(url=nexus_server.url, api_key=key, fail_on_problems=True))
    assert out['failed'] and out['auth']['ok'] is False
    assert 'HTTP 401' in out['msg'] and 'vanish when it restarts' in out['msg'], out['msg']
    assert 'only a token (JWT) or username/password work' in out['msg']
    assert key not in out['_run'].stdout + out['_run'].stderr
    # A wrong password is a refused login, named as such.
    out = run_module(INFO, dict(url=nexus_server.url, username='admin', password='wrong'))
    assert not out['ok'] and 'the username/password was rejected' in out['problems'][0]


def test_foreign_keyring_and_stopped_server(nexus_server):
    seed(nexus_server)
    token = nexus_server.token()
    nexus_server.stop()
    # A wrong NEXUS_KEY_PASSWORD makes the server replace its keyring: listing works, reads do not.
    nexus_server.key_password = 'another-keyring-password'
    nexus_server.start()
    out = run_module(INFO, dict(url=nexus_server.url, token=token, read='all', expected_count=4))
    assert out['count'] == 4 and len(out['unreadable']) == 3
    assert 'the keyring does not match the data' in out['unreadable'][0]['reason']
    assert out['problems'] == ['3 of 3 secrets read could not be read, first app/s0: '
                               + out['unreadable'][0]['reason']]
    url = nexus_server.url
    nexus_server.stop()
    out = run_module(INFO, dict(url=url, token=token, retries=0, fail_on_problems=True))
    assert out['failed'] and out['health']['status'] == 'unreachable' and out['count'] is None
    assert 'the server is unreachable' in out['msg']


def test_compare_backup(nexus_server, tmp_path):
    seed(nexus_server)
    backup = run_module('nexus.secrets.nexus_backup', dict(data_dir=str(nexus_server.workdir),
                                                           dest=str(tmp_path / 'b'), backup_password='bp'))
    assert not backup.get('failed'), backup
    args = dict(url=nexus_server.url, token=nexus_server.token(), read='none', compare_backup=backup['path'],
                backup_password='bp')
    out = run_module(INFO, args)
    assert out['ok'] and out['backup_match']['matches'] is True and out['backup_match']['backup_secrets'] == 4
    client = nexus_server.client()
    assert client.put('app/s1', 'changed-value').status_code == 200
    assert client.create('app/new', 'new-value').status_code == 201
    out = run_module(INFO, args)
    assert out['ok'] and out['backup_match']['matches'] is False
    assert out['backup_match']['paths'] == {'missing': [], 'extra': ['app/new'], 'changed': ['app/s1']}
    out = run_module(INFO, dict(args, backup_password='wrong'))
    assert out['failed'] and 'cannot be compared' in out['msg']
