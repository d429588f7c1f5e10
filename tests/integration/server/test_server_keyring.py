"""docs/nexus-behaviour.md §1-§2: the keyring files, the key password, and the destructive load of a bad keyring."""

from __future__ import annotations

import re
import stat

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.nexus_server.checks import (DEFAULT_PASSWORD, KEY_NAMES, db_rows, decrypt_keyring, decrypt_value,
                                       error_body, read_key_blob)

NEW_KEYRING = 'No existing keyring found, creating new one...'
BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'


def bech32_verify(text):
    """BIP-173 checksum over an age identity (lower-cased), independent of the server's encoder."""
    text = text.lower()
    hrp, data = text[:text.rindex('1')], text[text.rindex('1') + 1:]
    values = [BECH32.index(c) for c in data]
    gen = (0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3)
    chk = 1
    for v in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values:
        top = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((top >> i) & 1) else 0
    return hrp, values[:-6], chk == 1


def key_texts(keys_dir):
    return {name: (keys_dir / (name + '.key')).read_text() for name in KEY_NAMES}


def test_keyring_files_format_and_permissions(nexus_server_factory):
    server = nexus_server_factory()  # NEXUS_KEY_PASSWORD unset -> the default password
    keys_dir = server.keys_dir
    assert keys_dir == server.workdir / 'data' / 'keys'
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert sorted(p.name for p in keys_dir.iterdir()) == sorted(n + '.key' for n in KEY_NAMES)
    for name, text in key_texts(keys_dir).items():
        assert stat.S_IMODE((keys_dir / (name + '.key')).stat().st_mode) == 0o600
        assert re.fullmatch(r'[0-9a-f]+', text), name  # lowercase hex, no newline
    salts = {read_key_blob(keys_dir, n)[:16] for n in KEY_NAMES}
    nonces = {read_key_blob(keys_dir, n)[16:28] for n in KEY_NAMES}
    assert len(salts) == 1 and len(nonces) == 4  # one shared salt, a nonce per file

    plain = decrypt_keyring(keys_dir, DEFAULT_PASSWORD)
    assert {n: len(p) for n, p in plain.items()} == {'master': 32, 'signing': 64, 'verify': 32, 'age': 74}
    private = Ed25519PrivateKey.from_private_bytes(plain['signing'][:32])
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert plain['signing'][32:] == public == plain['verify']  # Go's 64-byte private key, and its public half
    age = plain['age'].decode('ascii')
    assert age.startswith('AGE-SECRET-KEY-1') and age == age.upper()
    hrp, data, ok = bech32_verify(age)
    assert hrp == 'age-secret-key-' and ok and len(data) == 52  # 32 bytes in 5-bit groups
    with pytest.raises(InvalidTag):
        decrypt_keyring(keys_dir, 'not-the-password')


@pytest.mark.parametrize('env_value', [None, ''])
def test_unset_or_empty_password_means_default(raw_server, tmp_path, env_value):
    env = {} if env_value is None else {'NEXUS_KEY_PASSWORD': env_value}
    raw_server(['-storage', 'memory'], cwd=tmp_path / 'w', env=env)
    decrypt_keyring(tmp_path / 'w' / 'data' / 'keys', DEFAULT_PASSWORD)


def test_values_are_encrypted_with_the_master_key(nexus_server_factory):
    server = nexus_server_factory(key_password='pw-values')
    server.client().create('enc/check', 'plain-text-value')
    server.stop()
    master = decrypt_keyring(server.keys_dir, 'pw-values')['master']
    (blob,) = db_rows(server.db_path, "SELECT value FROM secrets WHERE path = 'enc/check'")[0]
    assert b'plain-text-value' not in bytes(blob)
    assert len(blob) == 12 + len('plain-text-value') + 16  # nonce || ciphertext || tag
    assert decrypt_value(master, blob) == b'plain-text-value'
    (vblob,) = db_rows(server.db_path, 'SELECT value FROM secret_versions')[0]
    assert decrypt_value(master, vblob) == b'plain-text-value'


def test_same_password_keeps_keys_across_restarts(nexus_server_factory):
    server = nexus_server_factory(key_password='pw-stable')
    server.client().create('stable/a', 'va')
    before = key_texts(server.keys_dir)
    server.restart()
    assert key_texts(server.keys_dir) == before
    assert server.client().get('stable/a').json()['value'] == 'va'
    assert NEW_KEYRING in server.log_text() and server.log_text().count(NEW_KEYRING) == 1  # only the first start


def _assert_replaced(server, before, secret_path='s/one', value='v1'):
    after = key_texts(server.keys_dir)
    assert all(after[n] != before[n] for n in KEY_NAMES)  # all four overwritten
    assert server.log_text().count(NEW_KEYRING) == 2
    client = server.client()
    listed = client.list().json()
    assert secret_path in [s['path'] for s in listed['secrets']]  # listing still works
    error_body(client.get(secret_path), 500, 'failed to decrypt secret')
    assert client.create('s/new', 'fresh').status_code == 201  # the new keyring works
    assert client.get('s/new').json()['value'] == 'fresh'
    return after


def test_wrong_password_replaces_the_keyring(nexus_server_factory, tmp_path):
    workdir = tmp_path / 'kr'
    server = nexus_server_factory(workdir=workdir, key_password='right-password')
    server.client().create('s/one', 'v1')
    before = key_texts(server.keys_dir)
    server.stop()
    server.key_password = 'wrong-password'
    server.start()
    _assert_replaced(server, before)
    decrypt_keyring(server.keys_dir, 'wrong-password')  # now locked with the wrong one
    with pytest.raises(InvalidTag):
        decrypt_keyring(server.keys_dir, 'right-password')  # the old keys are gone


@pytest.mark.parametrize('damage', ['missing_age', 'corrupt_hex', 'trailing_newline', 'flipped_tag'])
def test_missing_or_corrupt_key_file_replaces_the_keyring(nexus_server_factory, damage):
    server = nexus_server_factory(key_password='pw-damage')
    server.client().create('s/one', 'v1')
    server.stop()
    before = key_texts(server.keys_dir)
    target = server.keys_dir / ('age.key' if damage == 'missing_age' else 'master.key')
    if damage.startswith('missing'):
        target.unlink()
    elif damage == 'corrupt_hex':
        target.write_text('zz' + before['master'][2:])
    elif damage == 'trailing_newline':  # an editor's newline: Go's hex decoding refuses it
        target.write_text(before['master'] + '\n')
    else:
        target.write_text(before['master'][:-2] + ('00' if before['master'][-2:] != '00' else '11'))
    server.start()
    _assert_replaced(server, before)


def test_extra_files_in_keys_dir_are_left_alone(nexus_server_factory):
    server = nexus_server_factory(key_password='pw-extra')
    server.stop()
    (server.keys_dir / 'extra.key').write_text('keep me')
    (server.keys_dir / 'master.key').unlink()
    server.start()
    assert (server.keys_dir / 'extra.key').read_text() == 'keep me'
