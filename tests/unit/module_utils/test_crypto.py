"""Argon2id key derivation: both backends agree, and the version gate picks the right one."""

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto


@pytest.mark.parametrize('password', ['fixture-backup-password', 'changeme-in-production', 'pässwörd ✓',
                                      b'\x00binary\xff', 'x'])
def test_both_backends_derive_the_same_key(password):
    salt = bytes(range(16))
    via_cryptography = _crypto.derive_key_cryptography(password, salt)
    via_argon2_cffi = _crypto.derive_key_argon2_cffi(password, salt)
    assert len(via_cryptography) == 32
    assert via_cryptography == via_argon2_cffi
    assert _crypto.derive_key(password, salt) == via_cryptography


def test_str_and_utf8_bytes_are_the_same_password():
    salt = b's' * 16
    assert _crypto.derive_key('pässword', salt) == _crypto.derive_key('pässword'.encode('utf-8'), salt)


def test_salt_and_password_change_the_key():
    base = _crypto.derive_key('a', b'1' * 16)
    assert base != _crypto.derive_key('b', b'1' * 16)
    assert base != _crypto.derive_key('a', b'2' * 16)


def test_parameters_are_nexus_parameters():
    # Argon2id t=1 m=64 MiB p=4 len=32, computed with argon2-cffi's high-level parameters.
    from argon2.low_level import Type, hash_secret_raw
    expected = hash_secret_raw(b'pw', b'0123456789abcdef', time_cost=1, memory_cost=65536, parallelism=4,
                               hash_len=32, type=Type.ID)
    assert _crypto.derive_key('pw', b'0123456789abcdef') == expected


def test_old_cryptography_falls_back_to_argon2_cffi(monkeypatch):
    salt = b'z' * 16
    expected = _crypto.derive_key('pw', salt)
    monkeypatch.setattr(_crypto, 'CRYPTOGRAPHY_VERSION', '43.0.3')
    assert _crypto._cryptography_argon2id() is None
    with pytest.raises(RuntimeError):
        _crypto.derive_key_cryptography('pw', salt)
    assert _crypto.derive_key('pw', salt) == expected
    assert _crypto.missing_dependency() is None


def test_missing_libraries_are_reported(monkeypatch):
    assert _crypto.missing_dependency() is None
    monkeypatch.setattr(_crypto, 'CRYPTOGRAPHY_VERSION', '41.0.0')
    monkeypatch.setattr(_crypto, 'HAS_ARGON2_CFFI', False)
    name, _tb = _crypto.missing_dependency()
    assert 'argon2-cffi' in name and 'cryptography' in name
    monkeypatch.setattr(_crypto, 'HAS_CRYPTOGRAPHY', False)
    assert _crypto.missing_dependency()[0] == 'cryptography'


@pytest.mark.parametrize('version,expected', [('44.0.0', (44, 0)), ('50.0.2', (50, 0)), ('43.0.3', (43, 0)),
                                              ('45.0.0rc1', (45, 0))])
def test_version_parsing(version, expected):
    assert _crypto._version_tuple(version) == expected
