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
from ansible_collections.nexus.secrets.plugins.module_utils._layout import KEY_FILES

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


def parse_key_text(path, text):
    """The binary blob of a key file's hex ``text``; ``path`` only names it in errors."""
    if len(text) > MAX_KEY_FILE_BYTES:
        raise KeyringError('keyring file %s is too large to be a NEXUS key' % path)
    try:
        blob = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise KeyringError('keyring file %s is not hex-encoded (corrupt?)' % path)
    if len(blob) < HEADER_LEN + TAG_LEN:
        raise KeyringError('keyring file %s is too short (truncated?)' % path)
    return blob


def _read_key_file(keys_dir, name):
    path = os.path.join(keys_dir, name)
    try:
        with open(path, 'rb') as fh:
            text = fh.read(MAX_KEY_FILE_BYTES + 1)
    except (IOError, OSError) as exc:
        raise KeyringError('keyring file %s cannot be read: %s' % (path, exc.strerror or exc))
    return parse_key_text(path, text)


def _require_crypto():
    missing = _crypto.missing_dependency()
    if missing:
        raise KeyringError('the Python library %s is required' % missing[0])


def open_keyring(blobs, key_password, keys_dir=''):
    """``{name: plaintext}`` of the four key files, or None when ``key_password`` is wrong.

    ``blobs`` maps each of KEY_FILES to its binary blob (``parse_key_text``). An empty or None
    password is NEXUS's default. Raises KeyringError when the password opens ``master.key`` but
    another file does not decrypt, or a plaintext has a shape NEXUS never writes (a keyring the
    server would throw away); ``keys_dir`` only names the files in that message.
    """
    _require_crypto()
    password = key_password or DEFAULT_KEY_PASSWORD
    keys = {}
    plaintexts = {}
    for name in KEY_FILES:
        blob = blobs[name]
        salt = blob[:SALT_LEN]
        if salt not in keys:
            keys[salt] = _crypto.AESGCM(_crypto.derive_key(password, salt))
        try:
            plaintext = keys[salt].decrypt(blob[SALT_LEN:HEADER_LEN], blob[HEADER_LEN:], None)
        except _crypto.InvalidTag:
            if name == 'master.key':
                return None
            raise KeyringError('keyring file %s does not decrypt with the password that opens master.key '
                               '(corrupt?)' % os.path.join(keys_dir, name))
        if not _plaintext_is_valid(name, plaintext):
            raise KeyringError('keyring file %s decrypts to an unexpected value (corrupt?)'
                               % os.path.join(keys_dir, name))
        plaintexts[name] = plaintext
    return plaintexts


def seal_keyring(plaintexts, key_password, salt=None):
    """``(aes_key, {name: hex text})``: the four key files NEXUS would write for ``key_password``.

    One fresh salt for all four files (one derived key), a fresh nonce per file, lowercase hex
    without a newline (docs/nexus-behaviour.md §2). ``aes_key`` lets a caller check what it wrote.
    """
    _require_crypto()
    salt = os.urandom(SALT_LEN) if salt is None else salt
    aes_key = _crypto.AESGCM(_crypto.derive_key(key_password or DEFAULT_KEY_PASSWORD, salt))
    texts = {}
    for name in KEY_FILES:
        nonce = os.urandom(HEADER_LEN - SALT_LEN)
        blob = salt + nonce + aes_key.encrypt(nonce, plaintexts[name], None)
        texts[name] = binascii.hexlify(blob)
    return aes_key, texts


def unseal(aes_key, blob):
    """The plaintext of one blob under an already derived key, or None when the tag fails."""
    try:
        return aes_key.decrypt(blob[SALT_LEN:HEADER_LEN], blob[HEADER_LEN:], None)
    except _crypto.InvalidTag:
        return None


def keyring_unlocks(keys_dir, key_password):
    """True if ``key_password`` decrypts the keyring in ``keys_dir``, False on a wrong password.

    An empty or None password is NEXUS's default ``changeme-in-production``. Raises KeyringError
    when a key file is missing or malformed, or when the password opens ``master.key`` but another
    file does not decrypt (a keyring the server would throw away).
    """
    _require_crypto()
    if not os.path.isdir(keys_dir):
        raise KeyringError('keyring directory %s does not exist' % keys_dir)
    blobs = dict((name, _read_key_file(keys_dir, name)) for name in KEY_FILES)
    return open_keyring(blobs, key_password, keys_dir) is not None
