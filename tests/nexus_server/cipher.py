"""AES-256-GCM in NEXUS's byte layouts and the Argon2id key derivation."""

from __future__ import annotations

import os

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
SALT_SIZE = 16
ARGON2_TIME = 1
ARGON2_MEMORY_KIB = 65536
ARGON2_THREADS = 4
KEY_SIZE = 32


class DecryptError(Exception):
    pass


def derive_key(password, salt):
    if isinstance(password, str):
        password = password.encode('utf-8')
    return hash_secret_raw(password, salt, time_cost=ARGON2_TIME, memory_cost=ARGON2_MEMORY_KIB,
                           parallelism=ARGON2_THREADS, hash_len=KEY_SIZE, type=Type.ID)


def seal(key, plaintext, nonce=None):
    """``nonce(12) || ciphertext || tag(16)``, no AAD."""
    nonce = nonce or os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


def open_sealed(key, blob):
    if len(blob) < NONCE_SIZE + 16:
        raise DecryptError('ciphertext too short')
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], None)
    except (InvalidTag, ValueError) as exc:
        raise DecryptError('message authentication failed') from exc


class ValueCipher:
    """Encrypts secret values with the master key (one AESGCM object, thread-safe)."""

    def __init__(self, master_key):
        self._aead = AESGCM(master_key)

    def encrypt(self, plaintext):
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, None)

    def decrypt(self, blob):
        blob = bytes(blob)
        if len(blob) < NONCE_SIZE + 16:
            raise DecryptError('ciphertext too short')
        try:
            return self._aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], None)
        except (InvalidTag, ValueError) as exc:
            raise DecryptError('message authentication failed') from exc
