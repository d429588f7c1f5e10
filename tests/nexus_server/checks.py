"""Independent checks of NEXUS formats, written from docs/nexus-behaviour.md with cryptography/argon2 directly.

Deliberately not built on the reference server's own modules, so that a wrong server cannot agree with
itself. Used by the server contract tests; other tests may use them too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEFAULT_PASSWORD = 'changeme-in-production'
KEY_NAMES = ('master', 'signing', 'verify', 'age')


def argon2id(password, salt):
    return hash_secret_raw(password.encode(), salt, time_cost=1, memory_cost=65536, parallelism=4,
                           hash_len=32, type=Type.ID)


def read_key_blob(keys_dir, name):
    return bytes.fromhex((Path(keys_dir) / (name + '.key')).read_text('ascii'))


def decrypt_keyring(keys_dir, password):
    """{name: plaintext} from the four files; raises cryptography's InvalidTag on a wrong password."""
    out, keys = {}, {}
    for name in KEY_NAMES:
        blob = read_key_blob(keys_dir, name)
        if blob[:16] not in keys:  # one derivation per distinct salt (the files share one)
            keys[blob[:16]] = argon2id(password, blob[:16])
        out[name] = AESGCM(keys[blob[:16]]).decrypt(blob[16:28], blob[28:], None)
    return out


def decrypt_value(master, blob):
    blob = bytes(blob)
    return AESGCM(master).decrypt(blob[:12], blob[12:], None)


def db_rows(db_path, sql, args=()):
    """Read a (possibly live) database through SQLite itself, WAL included."""
    conn = sqlite3.connect('file:%s?mode=ro' % db_path, uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def error_body(resp, status, message):
    """Assert the documented error shape: {"error": <status text>, "message": ...}."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {'error', 'message'}, body
    assert body['error'] == STATUS_TEXT[status], body
    assert body['message'] == message, body
    return body


STATUS_TEXT = {400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
               405: 'Method Not Allowed', 409: 'Conflict', 500: 'Internal Server Error',
               503: 'Service Unavailable'}
