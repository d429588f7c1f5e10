"""validate_certs and ca_path against a loopback HTTPS stub with a self-signed certificate."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.nexus.secrets.plugins.module_utils._api import NexusApiError, NexusClient
from tests.unit.module_utils.test_api import Stub


def self_signed(directory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u'127.0.0.1')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / 'cert.pem', directory / 'key.pem'
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def https_stub(tmp_path):
    cert, key = self_signed(tmp_path)
    stub = Stub()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    stub.server.socket = context.wrap_socket(stub.server.socket, server_side=True)
    stub.url = stub.url.replace('http://', 'https://')
    yield stub, cert
    stub.close()


@pytest.mark.filterwarnings('ignore:Unverified HTTPS request')
def test_certificates_are_checked_unless_told_otherwise(https_stub):
    stub, cert = https_stub
    stub.script = [(200, {'secrets': []})] * 2
    with pytest.raises(NexusApiError) as info:
        NexusClient(stub.url, token='t', retries=0).list_secrets()
    assert 'TLS error' in info.value.message and info.value.status is None
    assert NexusClient(stub.url, token='t', ca_path=cert).list_secrets() == []
    assert NexusClient(stub.url, token='t', validate_certs=False).list_secrets() == []
