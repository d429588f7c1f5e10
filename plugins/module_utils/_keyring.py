# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a password unlock a NEXUS keyring (``data/keys``)? Decided offline, without the server.

A server that cannot load its keyring replaces it with a new one and so loses every secret
(docs/nexus-behaviour.md §1), so this check runs before anything is restored or started. Key files (docs/nexus-behaviour.md §2)
are lowercase hex of ``salt(16) || nonce(12) || AES-256-GCM(plaintext || tag16)``. Private to this
collection.
"""

from __future__ import annotations

import binascii
import os

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import HEADER_LEN, SALT_LEN, TAG_LEN

KEY_FILES = ('master.key', 'signing.key', 'verify.key', 'age.key')
DEFAULT_KEY_PASSWORD = 'changeme-in-production'
MAX_KEY_FILE_BYTES = 64 * 1024


class KeyringError(Exception):
    """The keyring is missing or malformed (not merely locked with another password)."""


def _plaintext_is_valid(name, plaintext):
    """The plaintext shapes NEXUS writes; anything else would make the server replace the keyring."""
    if name == 'master.key':
        return len(plaintext) == 32
    if name == 'signing.key':
        return len(plaintext) == 64
    if name == 'verify.key':
        return len(plaintext) == 32
    if name == 'age.key':
        return len(plaintext) == 74 and plaintext.startswith(b'AGE-SECRET-KEY-1')
    return True


def _read_key_file(keys_dir, name):
    path = os.path.join(keys_dir, name)
    try:
        with open(path, 'rb') as fh:
            text = fh.read(MAX_KEY_FILE_BYTES + 1)
    except (IOError, OSError) as exc:
        raise KeyringError('keyring file %s cannot be read: %s' % (path, exc.strerror or exc))
    if len(text) > MAX_KEY_FILE_BYTES:
        raise KeyringError('keyring file %s is too large to be a NEXUS key' % path)
    try:
        blob = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise KeyringError('keyring file %s is not hex-encoded (corrupt?)' % path)
    if len(blob) < HEADER_LEN + TAG_LEN:
        raise KeyringError('keyring file %s is too short (truncated?)' % path)
    return blob


def keyring_unlocks(keys_dir, key_password):
    """True if ``key_password`` decrypts the keyring in ``keys_dir``, False on a wrong password.

    An empty or None password is NEXUS's default ``changeme-in-production``. Raises KeyringError
    when a key file is missing or malformed, or when the password opens ``master.key`` but another
    file does not decrypt (a keyring the server would throw away).
    """
    missing = _crypto.missing_dependency()
    if missing:
        raise KeyringError('the Python library %s is required' % missing[0])
    if not os.path.isdir(keys_dir):
        raise KeyringError('keyring directory %s does not exist' % keys_dir)
    password = key_password or DEFAULT_KEY_PASSWORD
    blobs = [(name, _read_key_file(keys_dir, name)) for name in KEY_FILES]
    keys = {}
    for name, blob in blobs:
        salt = blob[:SALT_LEN]
        if salt not in keys:
            keys[salt] = _crypto.AESGCM(_crypto.derive_key(password, salt))
        try:
            plaintext = keys[salt].decrypt(blob[SALT_LEN:HEADER_LEN], blob[HEADER_LEN:], None)
        except _crypto.InvalidTag:
            if name == 'master.key':
                return False
            raise KeyringError('keyring file %s does not decrypt with the password that opens master.key '
                               '(corrupt?)' % os.path.join(keys_dir, name))
        if not _plaintext_is_valid(name, plaintext):
            raise KeyringError('keyring file %s decrypts to an unexpected value (corrupt?)'
                               % os.path.join(keys_dir, name))
    return True
