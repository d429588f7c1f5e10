"""Real NEXUS data dirs for the crash tests, and their *state*: the hashes of every file NEXUS reads.

A data dir is made by the reference server itself (schema, keyring, secrets through the API), then
padded with version rows of random bytes so that decrypting and unpacking a backup of it take
several 1 MiB stream chunks. ``killed=True`` leaves it as ``kill -9`` does: ``nexus.db-wal``/``-shm``
beside the database, committed rows still in the WAL.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3

from tests.nexus_server.harness import NexusServer
from tests.nexus_server.storage_sqlite import SCHEMA

LIVE_NAMES = ('nexus.db', 'nexus.db-wal', 'nexus.db-shm', 'nexus.db-journal')
RESTORE_LEFTOVER_PREFIXES = ('.nexus-restore', '..nexus-restore')


def pad_versions(db_path, padding_bytes):
    """Add ``padding_bytes`` of random version rows of a secret nobody reads (NEXUS's own schema:
    a table NEXUS never creates would make the database refused)."""
    conn = sqlite3.connect(str(db_path))
    try:
        for statement in SCHEMA:
            conn.execute(statement)
        chunk = 64 * 1024
        conn.executemany("INSERT INTO secret_versions (id, secret_id, version, value, created_at, created_by) "
                         "VALUES (?, 'reliability-padding', ?, ?, '2025-01-01T00:00:00Z', 'padding')",
                         [('padding-%d' % i, i + 1, os.urandom(chunk))
                          for i in range(max(1, padding_bytes // chunk))])
        conn.commit()
    finally:
        conn.close()  # last connection: checkpoints and removes -wal/-shm


def make_data_dir(workdir, key_password, prefix, secrets=5, padding_bytes=0, killed=False):
    """Build a data dir in ``workdir``; return ``{secret path: value}`` of what the API acknowledged."""
    values = {}
    server = NexusServer(workdir, storage='sqlite', key_password=key_password)
    server.start()
    try:
        client = server.client()
        for i in range(secrets):
            path, value = '%s/secret-%02d' % (prefix, i), '%s-value-%02d-%s' % (prefix, i, os.urandom(8).hex())
            resp = client.create(path, value)
            assert resp.status_code == 201, resp.text
            values[path] = value
        client.close()
    finally:
        server.stop()
    if padding_bytes:
        pad_versions(server.db_path, padding_bytes)
    if killed:
        server.start()
        try:
            client = server.client()
            for i in range(3):
                path, value = '%s/in-wal-%02d' % (prefix, i), 'in-wal-%s' % os.urandom(8).hex()
                assert client.create(path, value).status_code == 201
                values[path] = value
            client.close()
        finally:
            server.kill()
        assert os.path.exists(str(server.db_path) + '-wal'), 'the killed server left no WAL'
    return values


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def state(root):
    """``{name: sha256}`` of ``nexus.db``, its ``-wal``/``-shm``/``-journal`` and every entry in ``data/keys``.

    A key entry that is not a regular file is recorded as such, so a half-moved keyring never
    compares equal to a complete one.
    """
    root = str(root)
    found = {}
    for name in LIVE_NAMES:
        path = os.path.join(root, name)
        if os.path.lexists(path):
            found[name] = sha256_file(path) if os.path.isfile(path) and not os.path.islink(path) else 'not-a-file'
    keys = os.path.join(root, 'data', 'keys')
    if os.path.lexists(keys):
        found['data/keys/'] = 'dir' if os.path.isdir(keys) and not os.path.islink(keys) else 'not-a-dir'
        if found['data/keys/'] == 'dir':
            for name in os.listdir(keys):
                path = os.path.join(keys, name)
                regular = os.path.isfile(path) and not os.path.islink(path)
                found['data/keys/' + name] = sha256_file(path) if regular else 'not-a-file'
    return found


def restore_leftovers(*dirs):
    """Staging dirs, journals and journal temp files of a restore found in ``dirs``."""
    found = []
    for directory in dirs:
        if os.path.isdir(str(directory)):
            found += sorted(n for n in os.listdir(str(directory)) if n.startswith(RESTORE_LEFTOVER_PREFIXES))
    return found
