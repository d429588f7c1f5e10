"""Helpers for the nexus_export / nexus_import tests: seeding servers and reading them back."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.helpers.ansible import run_module
from tests.unit.module_utils._fixtures import fixture_path

EXPORT = 'nexus.secrets.nexus_export'
IMPORT = 'nexus.secrets.nexus_import'
NEXUSCTL_EXPORT = fixture_path('nexusctl-export.json')
EXPECTED = fixture_path('expected-secrets.json')

# Values that stress encoding: quotes, unicode, HTML-escaped characters, newlines, URL-special paths.
SAMPLE = [
    dict(path='app/db/password', value='pa"ss\\word<&>', metadata={'owner': 'db', 'env': 'prod'}),
    dict(path='app/api/key', value='k3y-\u79d8\u5bc6-\U0001f510', metadata={}),
    dict(path='app/tls/key', value='-----BEGIN KEY-----\nabc\n-----END KEY-----\n', metadata={'format': 'pem'}),
    dict(path='app/with space/%25 and ?#', value='odd path', metadata={}),
    dict(path='App/Upper', value='case matters', metadata={'x': 'y'}),
    dict(path='other/one', value='1', metadata={}),
    dict(path='app_x/wild', value='underscore', metadata={}),
]


def conn(server, **extra):
    """Module args with token auth for ``server``."""
    args = dict(url=server.url, token=server.token())
    args.update(extra)
    return args


def seed(server, secrets):
    client = server.client()
    for secret in secrets:
        resp = call(client.create, secret['path'], secret['value'], secret.get('metadata') or None)
        assert resp.status_code == 201, resp.text


def call(method, *args, **kwargs):
    """One harness call, repeated while an injected fault (500/503/dropped connection) hits it."""
    for dummy in range(40):
        try:
            resp = method(*args, **kwargs)
        except requests.ConnectionError:
            time.sleep(0.05)
            continue
        if resp.status_code in (500, 503) and 'injected' in resp.text:
            time.sleep(0.05)
            continue
        return resp
    raise AssertionError('the reference server kept failing')


def read_all(server):
    """``{path: (value, metadata)}`` of every readable secret, straight from the API."""
    client = server.client()
    listing = call(client.list).json()['secrets']
    found = {}
    for entry in listing:
        resp = call(client.get, entry['path'])
        if resp.status_code == 200:
            body = resp.json()
            found[body['path']] = (body['value'], body.get('metadata') or {})
    return found


def versions(server, path):
    resp = call(server.client().versions, path)
    assert resp.status_code == 200, resp.text
    return resp.json()['total']


def as_map(secrets):
    return dict((s['path'], (s['value'], s.get('metadata') or {})) for s in secrets)


def load_json(path):
    with open(str(path), 'rb') as fh:
        return json.loads(fh.read())


def run(module, args, **kwargs):
    """run_module, minus the runner object so results print cleanly on assertion failures."""
    result = run_module(module, args, **kwargs)
    result.pop('_run', None)
    return result


@pytest.fixture(params=['sqlite', 'memory'])
def storage(request):
    return request.param
