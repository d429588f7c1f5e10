"""Bad input: each case ends with a clear ``msg``, nothing changes on the server, no secret leaks.

All cases run as tasks of one playbook (``ignore_errors``) to keep the test short.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.helpers.ansible import run_playbook
from tests.integration.export_import.conftest import EXPORT, IMPORT, read_all, seed
from tests.nexus_server import tokens
from tests.nexus_server.harness import refused_port
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import encrypt_bytes

GOOD = {'secrets': [{'path': 'a/b', 'value': 'VALUE-MUST-NOT-LEAK'}]}

# (task name, module, args, text the msg must contain)
CASES = [
    ('malformed json', IMPORT, {'src': '{{ dir }}/malformed.json'}, 'is not valid JSON'),
    ('wrong schema', IMPORT, {'src': '{{ dir }}/schema.json'},
     'is not a valid export (3 problem(s)): secrets[0] (x): "value" must be a non-empty string; '
     'secrets[1] (y): "metadata" must be a map of strings to strings; secrets[2] is not an object'),
    ('no secrets list', IMPORT, {'src': '{{ dir }}/nolist.json'}, 'there is no "secrets" list'),
    ('wrong export password', IMPORT, {'src': '{{ dir }}/enc.json', 'export_password': 'nope'},
     'export_password does not decrypt it'),
    ('encrypted without password', IMPORT, {'src': '{{ dir }}/enc.json'}, 'set export_password'),
    ('missing src', IMPORT, {'src': '{{ dir }}/absent.json'}, 'cannot read src'),
    ('unreachable server import', IMPORT, {'src': '{{ dir }}/good.json', 'url': '{{ dead_url }}', 'retries': 1},
     'cannot reach http://127.0.0.1:'),
    ('unreachable server export', EXPORT, {'dest': '{{ dir }}/out.json', 'url': '{{ dead_url }}', 'retries': 0},
     'cannot reach http://127.0.0.1:'),
    ('bad credentials', IMPORT, {'src': '{{ dir }}/good.json', 'token': None, 'username': 'admin',
                                 'password': 'WRONG-PASSWORD'},
     "login as 'admin' at http://127.0.0.1:"),
    ('invalid token', IMPORT, {'src': '{{ dir }}/good.json', 'token': 'not-a-jwt'},
     'HTTP 401: authentication required (the token was rejected: expired, revoked or wrong)'),
    ('expired token', EXPORT, {'dest': '{{ dir }}/out.json', 'token': '{{ expired_token }}'},
     'HTTP 401: authentication required (the token was rejected'),
    ('no credentials', EXPORT, {'dest': '{{ dir }}/out.json', 'token': None}, 'no credentials: set token'),
    ('two credentials', EXPORT, {'dest': '{{ dir }}/out.json', 'api_key': 'an-api-key-value'}, 'mutually exclusive'),
    ('no workers', IMPORT, {'src': '{{ dir }}/good.json', 'workers': 0}, 'workers must be 1 or more'),
    ('dest dir missing', EXPORT, {'dest': '{{ dir }}/nowhere/out.json'}, 'the directory of dest does not exist'),
    ('bad url', EXPORT, {'dest': '{{ dir }}/out.json', 'url': 'ftp://x'}, 'url must start with http://'),
]


@pytest.mark.slow
def test_bad_input_gives_clear_messages_and_changes_nothing(nexus_server, tmp_path):
    seed(nexus_server, [dict(path='pre/existing', value='untouched', metadata={})])
    (tmp_path / 'malformed.json').write_text('{"secrets": [{"path": "a", "value": "VALUE-MUST-NOT-LEAK"')
    (tmp_path / 'schema.json').write_text(json.dumps({'secrets': [
        {'path': 'x', 'value': ''}, {'path': 'y', 'value': 'VALUE-MUST-NOT-LEAK', 'metadata': {'n': 1}}, 7,
        {'path': 'z', 'value': 'VALUE-MUST-NOT-LEAK'}]}))
    (tmp_path / 'nolist.json').write_text('{"secret": []}')
    (tmp_path / 'good.json').write_text(json.dumps(GOOD))
    (tmp_path / 'enc.json').write_bytes(encrypt_bytes('right', json.dumps(GOOD).encode()))
    expired, dummy = tokens.issue('admin-001', 'admin', now_ns=time.time_ns() - 3 * 24 * 3600 * 10 ** 9)

    tasks = []
    for name, module, args, dummy in CASES:
        task_args = {'url': '{{ url }}', 'token': '{{ token }}'}
        task_args.update(args)
        task_args = dict((k, v) for k, v in task_args.items() if v is not None)
        tasks.append({'name': name, module: task_args, 'ignore_errors': True})
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    res = run_playbook(playbook, extra_vars={
        'url': nexus_server.url, 'token': nexus_server.token(), 'dir': str(tmp_path),
        'dead_url': 'http://127.0.0.1:%d' % refused_port(), 'expired_token': expired})

    for name, dummy2, dummy, expected in CASES:
        result = res.task(name)
        assert result.get('failed') is True, (name, result)
        assert expected in result['msg'], (name, result['msg'])
        assert result.get("changed") is not True, name
    for leak in ('VALUE-MUST-NOT-LEAK', 'WRONG-PASSWORD'):
        assert leak not in res.stdout and leak not in res.stderr
    assert read_all(nexus_server) == {'pre/existing': ('untouched', {})}
    assert not (tmp_path / 'out.json').exists()
