# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nexusctl's encrypted envelope, streamed in bounded memory.

Format (docs/nexus-behaviour.md §5): ``salt(16) || nonce(12) || AES-256-GCM(ciphertext || tag16)``, no AAD,
key = Argon2id(password, salt). GCM is a stream cipher plus a final tag, so both directions work
chunk by chunk; only the tag check at the very end authenticates what was decrypted before it.
Private to this collection.
"""

from __future__ import annotations

import os

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto

SALT_LEN = 16
NONCE_LEN = 12
TAG_LEN = 16
HEADER_LEN = SALT_LEN + NONCE_LEN
CHUNK_SIZE = 1024 * 1024

AUTH_FAILED_MSG = 'wrong backup password or the file is corrupt/tampered (authentication failed)'


class EnvelopeError(Exception):
    """A user-facing reason why an envelope cannot be decrypted."""


def _require_crypto():
    missing = _crypto.missing_dependency()
    if missing:
        raise EnvelopeError('the Python library %s is required' % missing[0])


def _check_password(password):
    if password is None or len(password) == 0:
        raise EnvelopeError('the backup password must not be empty')


class EnvelopeWriter(object):
    """File-like encryptor: ``write()`` plaintext, ``close()`` appends the GCM tag.

    The header (salt and nonce) is written at construction. ``close()`` never closes
    ``out_fileobj``; the caller owns it.
    """

    def __init__(self, out_fileobj, password):
        _require_crypto()
        _check_password(password)
        salt = os.urandom(SALT_LEN)
        nonce = os.urandom(NONCE_LEN)
        key = _crypto.derive_key(password, salt)
        self._encryptor = _crypto.Cipher(_crypto.algorithms.AES(key), _crypto.modes.GCM(nonce)).encryptor()
        self._out = out_fileobj
        self._out.write(salt + nonce)
        self.bytes_in = 0
        self.closed = False

    def writable(self):
        return True

    def write(self, data):
        if self.closed:
            raise ValueError('write to a closed EnvelopeWriter')
        if data:
            self._out.write(self._encryptor.update(data))
            self.bytes_in += len(data)
        return len(data)

    def flush(self):
        self._out.flush()

    def close(self):
        if self.closed:
            return
        self.closed = True
        tail = self._encryptor.finalize()
        self._out.write(tail + self._encryptor.tag)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # On an error the envelope is abandoned, not finished: a tag would make a partial file valid.
        if exc_type is None:
            self.close()
        else:
            self.closed = True
        return False


class EnvelopeReader(object):
    """File-like decryptor over an envelope stream.

    ``read()`` returns plaintext as it is decrypted; the last 16 bytes of the source are held
    back as the tag, and the ``read()`` that reaches the end verifies it (raising EnvelopeError
    on failure) before returning ``b''``. Everything returned before that is UNAUTHENTICATED.
    """

    def __init__(self, src_fileobj, password):
        _require_crypto()
        _check_password(password)
        self._src = src_fileobj
        header = _read_exactly(src_fileobj, HEADER_LEN)
        if len(header) < HEADER_LEN:
            raise EnvelopeError('the file is too short to be an encrypted backup (%d bytes; truncated or empty?)'
                                % len(header))
        key = _crypto.derive_key(password, header[:SALT_LEN])
        self._decryptor = _crypto.Cipher(_crypto.algorithms.AES(key),
                                         _crypto.modes.GCM(header[SALT_LEN:])).decryptor()
        self._held = b''     # the last TAG_LEN bytes seen so far: possibly the tag
        self._buffer = b''   # decrypted bytes not yet returned
        self._done = False
        self.bytes_out = 0

    def readable(self):
        return True

    def _fill(self):
        """Decrypt one more chunk into the buffer; verify the tag at end of input."""
        chunk = self._src.read(CHUNK_SIZE)
        if len(chunk) >= TAG_LEN:
            # Decrypt what was held back plus all but the last TAG_LEN bytes, without joining them.
            self._buffer += self._decryptor.update(self._held) + self._decryptor.update(
                memoryview(chunk)[:-TAG_LEN])
            self._held = chunk[-TAG_LEN:]
            return
        if chunk:
            data = self._held + chunk
            self._held = data[-TAG_LEN:]
            self._buffer += self._decryptor.update(data[:-TAG_LEN])
            return
        self._done = True
        if len(self._held) < TAG_LEN:
            raise EnvelopeError('the file is too short to be an encrypted backup (truncated)')
        try:
            self._buffer += self._decryptor.finalize_with_tag(self._held)
        except _crypto.InvalidTag:
            raise EnvelopeError(AUTH_FAILED_MSG)

    def read(self, size=-1):
        if size is None or size < 0:
            parts = []
            while True:
                piece = self.read(CHUNK_SIZE)
                if not piece:
                    return b''.join(parts)
                parts.append(piece)
        while not self._buffer and not self._done:
            self._fill()
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        self.bytes_out += len(out)
        return out

    def close(self):
        pass


def _read_exactly(fileobj, size):
    parts = []
    remaining = size
    while remaining:
        piece = fileobj.read(remaining)
        if not piece:
            break
        parts.append(piece)
        remaining -= len(piece)
    return b''.join(parts)


def open_source(src_path):
    """Open an envelope file for reading, with a clear error if that is impossible."""
    try:
        return open(src_path, 'rb')
    except (IOError, OSError) as exc:
        raise EnvelopeError('cannot read %s: %s' % (src_path, exc.strerror or exc))


def decrypt_file(src_path, password, out_fileobj):
    """Stream the plaintext of the envelope at ``src_path`` into ``out_fileobj``; return its size.

    Raises EnvelopeError for a wrong password, a tampered, truncated or unreadable file. The
    plaintext written before the tag check is unauthenticated: write it only into private staging
    and use it only after this returns.
    """
    with open_source(src_path) as src:
        try:
            reader = EnvelopeReader(src, password)
            while True:
                piece = reader.read(CHUNK_SIZE)
                if not piece:
                    return reader.bytes_out
                out_fileobj.write(piece)
        except (IOError, OSError) as exc:
            raise EnvelopeError('cannot read %s: %s' % (src_path, exc.strerror or exc))


def encrypt_bytes(password, data):
    """The envelope of ``data`` (small payloads; streams use EnvelopeWriter)."""
    _require_crypto()
    _check_password(password)
    salt = os.urandom(SALT_LEN)
    nonce = os.urandom(NONCE_LEN)
    key = _crypto.derive_key(password, salt)
    return salt + nonce + _crypto.AESGCM(key).encrypt(nonce, bytes(data), None)


def decrypt_bytes(password, blob):
    """The plaintext of an envelope held in memory; EnvelopeError when it does not authenticate."""
    _require_crypto()
    _check_password(password)
    blob = bytes(blob)
    if len(blob) < HEADER_LEN + TAG_LEN:
        raise EnvelopeError('the data is too short to be encrypted (%d bytes; truncated or empty?)' % len(blob))
    key = _crypto.derive_key(password, blob[:SALT_LEN])
    try:
        return _crypto.AESGCM(key).decrypt(blob[SALT_LEN:HEADER_LEN], blob[HEADER_LEN:], None)
    except _crypto.InvalidTag:
        raise EnvelopeError(AUTH_FAILED_MSG)
