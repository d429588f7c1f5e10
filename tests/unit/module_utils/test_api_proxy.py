"""Proxy variables are honoured, though read once per client rather than on every request."""

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._api import NexusClient


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'no_proxy', 'all_proxy',
                 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)


def test_proxy_from_environment_is_kept(monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', 'http://proxy.invalid:3128')
    client = NexusClient('https://nexus.invalid:9000', api_key='k')
    assert client.session.proxies.get('https') == 'http://proxy.invalid:3128'
    assert client.session.trust_env is False


def test_no_proxy_bypasses_it(monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', 'http://proxy.invalid:3128')
    monkeypatch.setenv('NO_PROXY', 'nexus.invalid')
    client = NexusClient('https://nexus.invalid:9000', api_key='k')
    assert 'https' not in client.session.proxies


def test_later_environment_changes_do_not_reach_requests(monkeypatch):
    client = NexusClient('http://127.0.0.1:9', api_key='k')
    monkeypatch.setenv('HTTP_PROXY', 'http://proxy.invalid:3128')
    settings = client.session.merge_environment_settings('http://127.0.0.1:9/health', {}, None, None, None)
    assert not settings['proxies'].get('http')
