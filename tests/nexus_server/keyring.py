"""The NEXUS keyring in ``./data/keys`` (docs/nexus-behaviour.md §1-§2), including its destructive load.

Each of ``master.key``, ``signing.key``, ``verify.key``, ``age.key`` is lowercase hex (no newline) of
``salt(16) || nonce(12) || AES-256-GCM(plaintext) || tag(16)``; the AES key is
Argon2id(password, salt, t=1, m=64 MiB, p=4, 32 bytes) and all four files share one salt.
If loading fails for any reason, a new keyring is generated and overwrites all four files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .cipher import SALT_SIZE, DecryptError, derive_key, open_sealed, seal

DEFAULT_PASSWORD = 'changeme-in-production'
KEY_NAMES = ('master', 'signing', 'verify', 'age')
PLAINTEXT_SIZES = {'master': 32, 'signing': 64, 'verify': 32, 'age': 74}
NEW_KEYRING_MESSAGE = 'No existing keyring found, creating new one...'

_HEX = re.compile(r'(?:[0-9a-fA-F]{2})*')
_BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'


class KeyringError(Exception):
    pass


def key_password(environ=None):
    """``NEXUS_KEY_PASSWORD``; unset or empty means the documented default."""
    environ = os.environ if environ is None else environ
    return environ.get('NEXUS_KEY_PASSWORD') or DEFAULT_PASSWORD


def _bech32_polymod(values):
    gen = (0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((top >> i) & 1) else 0
    return chk


def bech32_encode(hrp, data):
    """BIP-173 bech32 (not bech32m) of 8-bit ``data``, as age uses it."""
    acc, bits, groups = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            groups.append((acc >> bits) & 31)
    if bits:
        groups.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded + groups + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + '1' + ''.join(_BECH32[d] for d in groups + checksum)


def age_identity(raw=None):
    """``AGE-SECRET-KEY-1...``: 74 characters, upper case, as ``age-keygen`` prints it."""
    raw = raw or os.urandom(32)
    return bech32_encode('age-secret-key-', raw).upper()


@dataclass
class Keyring:
    master: bytes
    signing: bytes  # Ed25519 private key in Go's 64-byte form (seed || public)
    verify: bytes
    age: bytes

    def signer(self):
        return Ed25519PrivateKey.from_private_bytes(self.signing[:32])


def generate_plaintexts():
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Keyring(master=os.urandom(32), signing=seed + public, verify=public,
                   age=age_identity().encode('ascii'))


def _write_key_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as fh:
        fh.write(text)


def make_dirs(path, mode=0o700):
    """Like Go's ``os.MkdirAll(path, 0700)``: every directory it creates gets ``mode``."""
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=mode)


def save(keys_dir, keyring, password):
    keys_dir = Path(keys_dir)
    make_dirs(keys_dir)
    salt = os.urandom(SALT_SIZE)
    key = derive_key(password, salt)
    for name in KEY_NAMES:
        blob = salt + seal(key, getattr(keyring, name))
        _write_key_file(keys_dir / (name + '.key'), blob.hex())


def load(keys_dir, password):
    keys_dir = Path(keys_dir)
    blobs = {}
    for name in KEY_NAMES:
        try:
            text = (keys_dir / (name + '.key')).read_text('ascii')
            if not _HEX.fullmatch(text):  # Go's hex.DecodeString: no whitespace, no newline (fromhex skips them)
                raise ValueError('invalid hex')
            blobs[name] = bytes.fromhex(text)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise KeyringError('%s.key: %s' % (name, exc)) from exc
        if len(blobs[name]) < SALT_SIZE + 12 + 16:
            raise KeyringError('%s.key: too short' % name)
    derived = {}
    plain = {}
    for name, blob in blobs.items():
        salt = blob[:SALT_SIZE]
        if salt not in derived:
            derived[salt] = derive_key(password, salt)
        try:
            plain[name] = open_sealed(derived[salt], blob[SALT_SIZE:])
        except DecryptError as exc:
            raise KeyringError('%s.key: decryption failed (wrong password?)' % name) from exc
    for name, size in PLAINTEXT_SIZES.items():
        if len(plain[name]) != size:
            raise KeyringError('%s.key: plaintext is %d bytes, expected %d' % (name, len(plain[name]), size))
    return Keyring(**plain)


def load_or_create(keys_dir, password, log=print):
    """Load the keyring, or (destructively, like the real server) replace it with a new one."""
    try:
        return load(keys_dir, password)
    except KeyringError as exc:
        log(NEW_KEYRING_MESSAGE)
        log('keyring load failed: %s' % exc)
        keyring = generate_plaintexts()
        save(keys_dir, keyring, password)
        return keyring
