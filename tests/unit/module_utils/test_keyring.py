"""Keyring check, against keyrings written by the reference server's code and by nexus itself."""

import os

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._archive import extract_archive
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeReader
from ansible_collections.nexus.secrets.plugins.module_utils._keyring import KeyringError, keyring_unlocks
from ansible_collections.nexus.secrets.plugins.module_utils._layout import KEY_FILES

from tests.nexus_server import keyring as server_keyring
from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, KEYRING_PASSWORD, NEXUSCTL_BACKUP


@pytest.fixture
def keys_dir(tmp_path):
    path = tmp_path / 'data' / 'keys'
    server_keyring.save(path, server_keyring.generate_plaintexts(), 'right password')
    return path


def test_key_files():
    assert KEY_FILES == ('master.key', 'signing.key', 'verify.key', 'age.key')


def test_right_and_wrong_password(keys_dir):
    assert keyring_unlocks(str(keys_dir), 'right password') is True
    assert keyring_unlocks(str(keys_dir), 'wrong password') is False


@pytest.mark.parametrize('password', [None, ''])
def test_empty_password_means_the_nexus_default(tmp_path, password):
    server_keyring.save(tmp_path, server_keyring.generate_plaintexts(), 'changeme-in-production')
    assert keyring_unlocks(str(tmp_path), password) is True
    assert keyring_unlocks(str(tmp_path), 'other') is False


def test_nexusctl_fixture_keyring(tmp_path):
    staging = tmp_path / 'staging'
    staging.mkdir()
    with open(NEXUSCTL_BACKUP, 'rb') as src:
        extract_archive(EnvelopeReader(src, BACKUP_PASSWORD), str(staging))
    keys = str(staging / 'data' / 'keys')
    assert keyring_unlocks(keys, KEYRING_PASSWORD) is True
    assert keyring_unlocks(keys, BACKUP_PASSWORD) is False
    assert keyring_unlocks(keys, None) is False


@pytest.mark.parametrize('name', KEY_FILES)
def test_missing_key_file(keys_dir, name):
    os.unlink(str(keys_dir / name))
    with pytest.raises(KeyringError, match=name + ' cannot be read'):
        keyring_unlocks(str(keys_dir), 'right password')


def test_missing_directory(tmp_path):
    with pytest.raises(KeyringError, match='does not exist'):
        keyring_unlocks(str(tmp_path / 'nope'), 'x')


@pytest.mark.parametrize('content,message', [
    ('zz' * 40, 'not hex'),
    ('abcd', 'too short'),
    ('', 'too short'),
    ('a' * 200000, 'too large'),
])
def test_malformed_master_key(keys_dir, content, message):
    (keys_dir / 'master.key').write_text(content)
    with pytest.raises(KeyringError, match=message):
        keyring_unlocks(str(keys_dir), 'right password')


@pytest.mark.parametrize('name', ['signing.key', 'verify.key', 'age.key'])
def test_other_file_corrupt_is_an_error_not_a_wrong_password(keys_dir, name):
    blob = bytearray(bytes.fromhex((keys_dir / name).read_text()))
    blob[-1] ^= 1
    (keys_dir / name).write_text(blob.hex())
    with pytest.raises(KeyringError, match=name + ' does not decrypt'):
        keyring_unlocks(str(keys_dir), 'right password')


def test_wrong_plaintext_shape(keys_dir):
    """A master key of the wrong size would make the server discard the whole keyring."""
    from tests.nexus_server.cipher import derive_key, seal
    salt = bytes.fromhex((keys_dir / 'master.key').read_text())[:16]
    (keys_dir / 'master.key').write_text((salt + seal(derive_key('right password', salt), b'short')).hex())
    with pytest.raises(KeyringError, match='unexpected value'):
        keyring_unlocks(str(keys_dir), 'right password')


def test_trailing_newline_is_accepted(keys_dir):
    for name in KEY_FILES:
        path = keys_dir / name
        path.write_text(path.read_text() + '\n')
    assert keyring_unlocks(str(keys_dir), 'right password') is True


def test_seal_keyring_writes_what_nexus_loads(tmp_path):
    """Re-wrapped files in NEXUS's format: the reference server's loader opens them, one shared salt."""
    from ansible_collections.nexus.secrets.plugins.module_utils._keyring import open_keyring, seal_keyring

    plain = server_keyring.generate_plaintexts()
    originals = {name + '.key': getattr(plain, name) for name in ('master', 'signing', 'verify', 'age')}
    dummy, texts = seal_keyring(originals, 'new password')
    for name, text in texts.items():
        assert text == text.lower() and not text.endswith(b'\n')
        (tmp_path / name).write_bytes(text)
    assert server_keyring.load(tmp_path, 'new password') == plain
    assert len({bytes.fromhex(t.decode())[:16] for t in texts.values()}) == 1
    assert keyring_unlocks(str(tmp_path), 'new password') and not keyring_unlocks(str(tmp_path), 'old')
    blobs = {name: bytes.fromhex(text.decode()) for name, text in texts.items()}
    assert open_keyring(blobs, 'new password') == originals and open_keyring(blobs, 'other') is None
