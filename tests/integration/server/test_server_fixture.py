"""On-disk compatibility with the real NEXUS: serve the data of a backup made by the real nexusctl.

The backup is opened by a small reader written here from docs/nexus-behaviour.md §5 alone (Argon2id -> AES-256-GCM
-> gzip -> POSIX ustar), independent of both the collection's code and the reference server's.
"""

from __future__ import annotations

import gzip
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.nexus_server.checks import KEY_NAMES, decrypt_keyring, decrypt_value, error_body
from tests.nexus_server.fixture_data import (BACKUP_PASSWORD, KEYRING_PASSWORD, backup_path, export_data,
                                             live_secrets, soft_deleted_paths)

KEY_MEMBERS = {'data/keys/%s.key' % n for n in KEY_NAMES}


# -- the independent reader -----------------------------------------------------------------------

def decrypt_backup(blob, password):
    """``salt(16) || nonce(12) || AES-256-GCM(ct || tag16)``, key = Argon2id(pw, salt, 1, 64 MiB, 4, 32)."""
    salt, nonce, sealed = blob[:16], blob[16:28], blob[28:]
    key = hash_secret_raw(password.encode(), salt, time_cost=1, memory_cost=65536, parallelism=4, hash_len=32,
                          type=Type.ID)
    return AESGCM(key).decrypt(nonce, sealed, None)


def read_ustar(data):
    """[(name, typeflag, mode, payload)] of a POSIX ustar archive (no extensions needed here)."""
    members, offset = [], 0
    while offset + 512 <= len(data):
        header = data[offset:offset + 512]
        if header == b'\0' * 512:
            break
        assert header[257:263] == b'ustar\0', 'not a POSIX ustar header'
        checksum = int(header[148:156].strip(b'\0 ') or b'0', 8)
        assert checksum == sum(header[:148]) + 8 * 32 + sum(header[156:]), 'bad header checksum'
        name = header[0:100].split(b'\0', 1)[0].decode()
        prefix = header[345:500].split(b'\0', 1)[0].decode()
        if prefix:
            name = prefix + '/' + name
        mode = int(header[100:108].strip(b'\0 ') or b'0', 8)
        size = int(header[124:136].strip(b'\0 ') or b'0', 8)
        typeflag = header[156:157]
        payload = data[offset + 512:offset + 512 + size]
        members.append((name, typeflag, mode, payload))
        offset += 512 + (size + 511) // 512 * 512
    return members


@pytest.fixture(scope='module')
def backup_members():
    plaintext = decrypt_backup(backup_path().read_bytes(), BACKUP_PASSWORD)
    assert plaintext[:2] == b'\x1f\x8b'  # gzip
    return read_ustar(gzip.decompress(plaintext))


@pytest.fixture
def restored_dir(backup_members, tmp_path):
    """The backup extracted by hand into a fresh working directory, modes as archived."""
    workdir = tmp_path / 'restored'
    workdir.mkdir()
    for name, typeflag, mode, payload in backup_members:
        target = workdir / name
        if typeflag == b'5':
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
        os.chmod(target, stat.S_IMODE(mode))
    return workdir


# -- the archive itself ---------------------------------------------------------------------------

def test_backup_layout_matches_the_contract(backup_members):
    names = [m[0] for m in backup_members]
    assert set(names) == {'nexus.db', 'data/keys'} | KEY_MEMBERS
    assert not any(n.startswith('./') or n.endswith('/') for n in names)
    kinds = {name: (typeflag, stat.S_IMODE(mode)) for name, typeflag, mode, dummy in backup_members}
    assert kinds['data/keys'] == (b'5', 0o700)
    assert kinds['nexus.db'][0] == b'0'
    assert all(kinds[n] == (b'0', 0o600) for n in KEY_MEMBERS)
    with pytest.raises(InvalidTag):  # the GCM tag: another password derives another key
        decrypt_backup(backup_path().read_bytes(), 'not-the-backup-password')


def test_fixture_keyring_opens_with_its_password(restored_dir):
    plain = decrypt_keyring(restored_dir / 'data' / 'keys', KEYRING_PASSWORD)
    assert len(plain['master']) == 32
    conn = sqlite3.connect(str(restored_dir / 'nexus.db'))
    rows = conn.execute('SELECT path, value FROM secrets WHERE deleted_at IS NULL').fetchall()
    conn.close()
    expected = live_secrets()
    assert {p: decrypt_value(plain['master'], v).decode() for p, v in rows} == \
        {p: s['value'] for p, s in expected.items()}


def test_fresh_reference_database_has_the_real_schema(restored_dir, nexus_server_factory):
    """Same tables, columns, constraints and indexes, statement for statement (so files interoperate)."""
    def schema(db):
        conn = sqlite3.connect(str(db))
        try:
            return sorted(conn.execute('SELECT type, name, tbl_name, sql FROM sqlite_master').fetchall(),
                          key=lambda r: (r[0], r[1]))
        finally:
            conn.close()

    server = nexus_server_factory()
    server.stop()  # checkpointed: the schema is in nexus.db itself
    assert schema(server.db_path) == schema(restored_dir / 'nexus.db')
    conn = sqlite3.connect(str(server.db_path))
    assert conn.execute('PRAGMA journal_mode').fetchone() == ('wal',)
    fks = conn.execute('PRAGMA foreign_key_list(secret_versions)').fetchall()
    conn.close()
    assert [(f[2], f[3], f[4], f[6]) for f in fks] == [('secrets', 'secret_id', 'id', 'CASCADE')]


# -- the reference server on the real data --------------------------------------------------------

def test_reference_server_serves_exactly_the_fixture_secrets(restored_dir, nexus_server_factory):
    keys_before = {n: (restored_dir / 'data' / 'keys' / (n + '.key')).read_bytes() for n in KEY_NAMES}
    server = nexus_server_factory(workdir=restored_dir, key_password=KEYRING_PASSWORD)
    client = server.client()
    expected = live_secrets()

    listing = client.list().json()
    assert listing['total'] == 12
    assert [s['path'] for s in listing['secrets']] == sorted(expected)
    for path, want in expected.items():
        got = client.get(path)
        assert got.status_code == 200, (path, got.text)
        body = got.json()
        assert body['value'] == want['value'], path
        assert body.get('metadata', {}) == want['metadata'], path
        assert body['version'] == want['version'], path
        versions = client.versions(path).json()
        assert [v['version'] for v in versions['versions']] == list(range(want['version'], 0, -1)), path

    for path in soft_deleted_paths():
        error_body(client.get(path), 404, 'secret not found')
        assert client.list(prefix=path).json()['total'] == 0
        error_body(client.create(path, 'again'), 500, 'failed to create secret')  # the path stays burned

    exported = {s['path']: s for s in export_data()['secrets']}
    for item in listing['secrets']:
        assert item['created_at'] == exported[item['path']]['created_at']  # same time format as the real API
        assert item['created_by'] == exported[item['path']]['created_by'] == 'admin-001'

    assert 'No existing keyring found' not in server.log_text()
    assert {n: (restored_dir / 'data' / 'keys' / (n + '.key')).read_bytes() for n in KEY_NAMES} == keys_before


def test_reference_server_adds_to_real_data_in_the_real_format(restored_dir, nexus_server_factory):
    server = nexus_server_factory(workdir=restored_dir, key_password=KEYRING_PASSWORD)
    client = server.client()
    assert client.put('prod/api/password', value='rotated').json()['version'] == 2
    assert client.create('prod/new/one', 'fresh', {'k': 'v'}).status_code == 201
    server.stop()
    master = decrypt_keyring(Path(restored_dir) / 'data' / 'keys', KEYRING_PASSWORD)['master']
    conn = sqlite3.connect(str(restored_dir / 'nexus.db'))
    rows = dict(conn.execute("SELECT path, value FROM secrets WHERE path IN ('prod/api/password', 'prod/new/one')"))
    old_rows = conn.execute('SELECT created_at, updated_at FROM secrets WHERE path = ?',
                            ('team-a/ci/deploy-token',)).fetchone()
    new_rows = conn.execute('SELECT created_at, updated_at, metadata FROM secrets WHERE path = ?',
                            ('prod/new/one',)).fetchone()
    conn.close()
    assert decrypt_value(master, rows['prod/api/password']) == b'rotated'
    assert decrypt_value(master, rows['prod/new/one']) == b'fresh'
    # timestamps and metadata stored the way the real server stores them
    pattern = r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})?\+00:00'
    for text in old_rows + new_rows[:2]:
        assert re.fullmatch(pattern, text), text
    assert new_rows[2] == '{"k":"v"}'
