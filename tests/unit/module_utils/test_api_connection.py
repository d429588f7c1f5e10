"""The shared connection argument spec: options, no_log, env fallbacks, and that the docs match it."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.nexus.secrets.plugins.doc_fragments.connection import ModuleDocFragment
from ansible_collections.nexus.secrets.plugins.module_utils._connection import (
    CONNECTION_OPTIONS,
    CREDENTIAL_ENV,
    auth_method,
    nexus_argument_spec,
)


def test_secrets_are_no_log_and_only_non_credentials_fall_back_at_validation():
    assert [n for n, o in CONNECTION_OPTIONS.items() if o.get('no_log')] == ['password', 'token', 'api_key']
    env = dict((n, o['fallback'][1][0]) for n, o in CONNECTION_OPTIONS.items() if 'fallback' in o)
    assert env == {'url': 'NEXUS_URL', 'validate_certs': 'NEXUS_VALIDATE_CERTS'}
    assert dict(CREDENTIAL_ENV) == {'username': 'NEXUS_USERNAME', 'password': 'NEXUS_PASSWORD',
                                    'token': 'NEXUS_TOKEN', 'api_key': 'NEXUS_API_KEY'}


def test_builder_adds_module_options_and_refuses_clashes():
    spec = nexus_argument_spec(dest=dict(type='path', required=True))
    assert spec['dest']['required'] is True and spec['url']['default'] == 'http://127.0.0.1:9000'
    spec['url']['default'] = 'changed'
    assert CONNECTION_OPTIONS['url']['default'] == 'http://127.0.0.1:9000'  # callers get copies
    with pytest.raises(ValueError, match='timeout'):
        nexus_argument_spec(timeout=dict(type='int'))


def test_doc_fragment_matches_the_spec():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    assert set(documented) == set(CONNECTION_OPTIONS)
    for name, option in CONNECTION_OPTIONS.items():
        assert documented[name]['type'] == option['type'], name
        assert documented[name].get('default') == option.get('default'), name


@pytest.mark.parametrize('params, method', [
    ({'token': 't', 'api_key': 'k', 'username': 'u'}, 'token'),
    ({'token': None, 'api_key': 'k', 'username': 'u'}, 'api_key'),
    ({'token': '', 'api_key': None, 'username': 'u'}, 'username/password'),
    ({'token': None, 'api_key': None, 'username': None}, None),
])
def test_auth_method_precedence(params, method):
    assert auth_method(params) == method
