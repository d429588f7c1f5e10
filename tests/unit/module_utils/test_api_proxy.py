"""Proxy variables reach the client's own transport: HTTP proxies get absolute-form requests (with
Proxy-Authorization from the proxy URL), HTTPS goes through a CONNECT tunnel with the certificate still
checked, NO_PROXY bypasses the proxy, and the environment is read once, when the client is made."""

from __future__ import annotations

import base64
import socket
import threading

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._api import NexusApiError, NexusClient
from tests.unit.module_utils.test_api import Stub, stub  # noqa: F401 (fixture)  # pylint: disable=unused-import
from tests.unit.module_utils.test_api_tls import https_stub  # noqa: F401 (fixture)  # pylint: disable=unused-import

LISTING = (200, {'secrets': [{'path': 'a'}], 'total': 1})


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'no_proxy', 'all_proxy',
                 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy():
    server = Stub()
    yield server
    server.close()


class ConnectProxy(object):
    """A CONNECT-only proxy on loopback that tunnels bytes both ways and records the targets."""

    def __init__(self):
        self.targets = []
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.url = 'http://127.0.0.1:%d' % self.sock.getsockname()[1]
        self.threads = []
        self._spawn(self._accept)

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self):
        while True:
            try:
                client, dummy = self.sock.accept()
            except OSError:
                return
            head = b''
            while b'\r\n\r\n' not in head:
                head += client.recv(4096)
            target = head.split(b' ')[1].decode()
            self.targets.append(target)
            host, port = target.rsplit(':', 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for end in (src, dst):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_http_proxy_gets_absolute_requests_with_its_credentials(proxy, monkeypatch):
    monkeypatch.setenv('HTTP_PROXY', proxy.url.replace('http://', 'http://user:p%40ss@'))
    proxy.script = [LISTING, (200, {'path': 'x/y', 'value': 'v'})]
    client = NexusClient('http://nexus.invalid:9000', api_key='k', retries=0)
    assert client.list_secrets() == [{'path': 'a'}]
    assert client.get_secret('x/y')['value'] == 'v'
    assert [s['path'] for s in proxy.seen] == ['http://nexus.invalid:9000/api/v1/secrets',
                                               'http://nexus.invalid:9000/api/v1/secrets/x/y']
    expected = 'Basic ' + base64.b64encode(b'user:p@ss').decode()
    assert all(s['headers'].get('Proxy-Authorization') == expected for s in proxy.seen)
    assert proxy.seen[0]['headers']['X-API-Key'] == 'k'


def test_no_proxy_bypasses_it(proxy, stub, monkeypatch):  # noqa: F811
    monkeypatch.setenv('HTTP_PROXY', proxy.url)
    monkeypatch.setenv('NO_PROXY', 'localhost,127.0.0.1')
    stub.script = [LISTING]
    assert NexusClient(stub.url, api_key='k', retries=0).list_secrets() == [{'path': 'a'}]
    assert [s['path'] for s in stub.seen] == ['/api/v1/secrets'] and proxy.seen == []


def test_environment_is_read_once(proxy, stub, monkeypatch):  # noqa: F811
    client = NexusClient(stub.url, api_key='k', retries=0)
    monkeypatch.setenv('HTTP_PROXY', proxy.url)
    stub.script = [LISTING]
    client.list_secrets()
    assert len(stub.seen) == 1 and proxy.seen == []


def test_https_goes_through_a_connect_tunnel_and_still_checks_the_certificate(https_stub, monkeypatch):  # noqa: F811
    server, cert = https_stub
    tunnel = ConnectProxy()
    try:
        monkeypatch.setenv('HTTPS_PROXY', tunnel.url)
        server.script = [LISTING]
        assert NexusClient(server.url, token='t', ca_path=cert, retries=0).list_secrets() == [{'path': 'a'}]
        with pytest.raises(NexusApiError) as info:
            NexusClient(server.url, token='t', retries=0).list_secrets()
        assert 'TLS error' in info.value.message
        port = server.url.rsplit(':', 1)[1]
        assert tunnel.targets == ['127.0.0.1:%s' % port] * 2
        assert server.seen[0]['path'] == '/api/v1/secrets'
    finally:
        tunnel.close()


def test_unsupported_proxy_scheme_is_a_clear_error(monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', 'socks5://127.0.0.1:1080')
    with pytest.raises(ValueError, match='only http:// proxies are supported'):
        NexusClient('https://nexus.invalid:9000', api_key='k')
