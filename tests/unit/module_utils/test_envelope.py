"""nexusctl's envelope: round trips, the real fixture, tampering, truncation, bounded memory."""

import io
import os
import subprocess
import sys
import textwrap

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto, _envelope
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import (
    HEADER_LEN, NONCE_LEN, SALT_LEN, TAG_LEN, EnvelopeError, EnvelopeReader, EnvelopeWriter, decrypt_bytes,
    decrypt_file, encrypt_bytes)

from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, NEXUSCTL_BACKUP

AUTH = 'wrong backup password or the file is corrupt/tampered (authentication failed)'


def test_constants():
    assert (SALT_LEN, NONCE_LEN, TAG_LEN, HEADER_LEN) == (16, 12, 16, 28)


@pytest.mark.parametrize('size', [0, 1, 15, 16, 17, 1024 * 1024 - 1, 1024 * 1024 + 7])
def test_bytes_round_trip(size):
    data = os.urandom(size)
    blob = encrypt_bytes('pw', data)
    assert len(blob) == HEADER_LEN + size + TAG_LEN
    assert decrypt_bytes('pw', blob) == data


def test_writer_output_is_the_nexusctl_format(tmp_path):
    """Checked with AESGCM directly: salt || nonce || ciphertext || tag, no AAD."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    out = io.BytesIO()
    with EnvelopeWriter(out, 'pw') as writer:
        for i in range(0, len(data), 100000):
            writer.write(data[i:i + 100000])
    blob = out.getvalue()
    key = _crypto.derive_key_argon2_cffi('pw', blob[:16])
    assert AESGCM(key).decrypt(blob[16:28], blob[28:], None) == data
    assert decrypt_bytes('pw', blob) == data


def test_two_envelopes_of_the_same_data_differ():
    assert encrypt_bytes('pw', b'same') != encrypt_bytes('pw', b'same')


def test_decrypt_file_streams_into_fileobj(tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 3)
    src = tmp_path / 'x.enc'
    src.write_bytes(encrypt_bytes('pw', data))
    out = io.BytesIO()
    assert decrypt_file(str(src), 'pw', out) == len(data)
    assert out.getvalue() == data


def test_reader_returns_short_reads_and_verifies_at_end():
    data = os.urandom(5000)
    reader = EnvelopeReader(io.BytesIO(encrypt_bytes('pw', data)), 'pw')
    got = b''.join(iter(lambda: reader.read(777), b''))
    assert got == data and reader.read(10) == b''


def test_nexusctl_fixture_decrypts():
    out = io.BytesIO()
    size = decrypt_file(NEXUSCTL_BACKUP, BACKUP_PASSWORD, out)
    assert size == len(out.getvalue()) > 0
    assert out.getvalue()[:2] == b'\x1f\x8b'  # gzip
    with open(NEXUSCTL_BACKUP, 'rb') as fh:
        assert decrypt_bytes(BACKUP_PASSWORD, fh.read()) == out.getvalue()


def test_wrong_password(tmp_path):
    src = tmp_path / 'x.enc'
    src.write_bytes(encrypt_bytes('right', b'payload' * 1000))
    with pytest.raises(EnvelopeError) as err:
        decrypt_file(str(src), 'wrong', io.BytesIO())
    assert str(err.value) == AUTH
    with pytest.raises(EnvelopeError, match='authentication failed'):
        decrypt_bytes('wrong', src.read_bytes())


def test_fixture_with_wrong_password():
    with pytest.raises(EnvelopeError, match='authentication failed'):
        decrypt_file(NEXUSCTL_BACKUP, 'not-the-password', io.BytesIO())


@pytest.mark.parametrize('where', ['salt', 'nonce', 'body-start', 'body-middle', 'body-end', 'tag'])
def test_any_flipped_byte_is_detected(tmp_path, where):
    blob = bytearray(encrypt_bytes('pw', os.urandom(3 * 1024 * 1024)))
    body_end = len(blob) - TAG_LEN
    index = {'salt': 3, 'nonce': SALT_LEN + 5, 'body-start': HEADER_LEN, 'body-middle': len(blob) // 2,
             'body-end': body_end - 1, 'tag': len(blob) - 1}[where]
    blob[index] ^= 0x01
    src = tmp_path / 'x.enc'
    src.write_bytes(bytes(blob))
    with pytest.raises(EnvelopeError, match='authentication failed'):
        decrypt_file(str(src), 'pw', io.BytesIO())
    with pytest.raises(EnvelopeError, match='authentication failed'):
        decrypt_bytes('pw', bytes(blob))


@pytest.mark.parametrize('keep', [0, 1, 27, 28, 43, 44, -1, -16, -17])
def test_truncated_or_tiny_file(tmp_path, keep):
    blob = encrypt_bytes('pw', b'x' * 100)
    cut = blob[:keep] if keep >= 0 else blob[:len(blob) + keep]
    src = tmp_path / 'x.enc'
    src.write_bytes(cut)
    with pytest.raises(EnvelopeError) as err:
        decrypt_file(str(src), 'pw', io.BytesIO())
    assert 'too short' in str(err.value) or 'authentication failed' in str(err.value)
    with pytest.raises(EnvelopeError):
        decrypt_bytes('pw', cut)


def test_unreadable_source(tmp_path):
    with pytest.raises(EnvelopeError, match='cannot read .*missing.enc'):
        decrypt_file(str(tmp_path / 'missing.enc'), 'pw', io.BytesIO())
    with pytest.raises(EnvelopeError, match='cannot read'):
        decrypt_file(str(tmp_path), 'pw', io.BytesIO())


@pytest.mark.parametrize('password', ['', None, b''])
def test_empty_password_is_refused(password):
    with pytest.raises(EnvelopeError, match='must not be empty'):
        encrypt_bytes(password, b'x')
    with pytest.raises(EnvelopeError, match='must not be empty'):
        EnvelopeWriter(io.BytesIO(), password)


def test_writer_aborted_by_an_error_writes_no_tag():
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with EnvelopeWriter(out, 'pw') as writer:
            writer.write(b'a' * 100)
            raise RuntimeError('boom')
    with pytest.raises(EnvelopeError):
        decrypt_bytes('pw', out.getvalue())
    with pytest.raises(ValueError):
        writer.write(b'more')


STREAM_SCRIPT = textwrap.dedent('''
    import hashlib, os, resource, sys, tempfile
    from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeWriter, decrypt_file
    total = int(sys.argv[1]); path = sys.argv[2]
    block = os.urandom(1024 * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(path, 'wb') as out:
        with EnvelopeWriter(out, 'pw') as writer:
            for _ in range(total // len(block)):
                writer.write(block)
    class Sink(object):
        def __init__(self): self.h = hashlib.sha256(); self.n = 0
        def write(self, d): self.h.update(d); self.n += len(d)
    sink = Sink()
    decrypt_file(path, 'pw', sink)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(sink.n, after - before, os.path.getsize(path))
''')


@pytest.mark.slow  # 256 MiB through the writer and the reader
def test_streaming_memory_is_bounded(tmp_path):
    """256 MiB through writer and decrypt_file; peak RSS grows by far less than the data."""
    total = 256 * 1024 * 1024
    proc = subprocess.run([sys.executable, '-c', STREAM_SCRIPT, str(total), str(tmp_path / 'big.enc')],
                          capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    size, grown_kib, file_size = (int(x) for x in proc.stdout.split())
    assert size == total
    assert file_size == total + HEADER_LEN + TAG_LEN
    assert grown_kib < 48 * 1024, 'peak RSS grew by %d KiB while streaming 256 MiB' % grown_kib


def test_module_reports_missing_crypto(monkeypatch):
    monkeypatch.setattr(_crypto, 'HAS_CRYPTOGRAPHY', False)
    with pytest.raises(EnvelopeError, match='cryptography is required'):
        _envelope.encrypt_bytes('pw', b'x')
