"""docs/nexus-behaviour.md §3: what the sqlite storage writes into nexus.db."""

from __future__ import annotations

import json
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.nexus_server.checks import DEFAULT_PASSWORD, db_rows, decrypt_keyring, decrypt_value

GO_SQLITE_TIME = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})?\+00:00')


def test_rows_written_like_the_real_server(nexus_server):
    client = nexus_server.client()
    client.create('db/a', 'v1', {'team': 'ops'})
    client.put('db/a', value='v2')
    client.put('db/a', metadata={})
    client.create('db/b', 'only')
    client.delete('db/b')
    client.audit()  # flushes pending audit rows
    db = nexus_server.db_path
    master = decrypt_keyring(nexus_server.keys_dir, DEFAULT_PASSWORD)['master']

    (row,) = db_rows(db, "SELECT id, value, metadata, version, created_at, created_by, updated_at, updated_by, "
                         "deleted_at, rotation_enabled FROM secrets WHERE path = 'db/a'")
    sid, value, metadata, version, created_at, created_by, updated_at, updated_by, deleted_at, rotation = row
    assert decrypt_value(master, value) == b'v2'
    assert metadata == '{}' and version == 3 and deleted_at is None and rotation == 0
    assert created_by == updated_by == 'admin-001'
    assert GO_SQLITE_TIME.fullmatch(created_at) and GO_SQLITE_TIME.fullmatch(updated_at)
    assert updated_at >= created_at

    versions = db_rows(db, 'SELECT version, value, created_by FROM secret_versions WHERE secret_id = ? '
                           'ORDER BY version', (sid,))
    assert [v[0] for v in versions] == [1, 2, 3]
    assert [decrypt_value(master, v[1]) for v in versions] == [b'v1', b'v2', b'v2']

    # soft delete: the row stays, with deleted_at set, and keeps its path
    ((deleted_at_b, updated_b, created_b),) = db_rows(
        db, "SELECT deleted_at, updated_at, created_at FROM secrets WHERE path = 'db/b'")
    assert GO_SQLITE_TIME.fullmatch(deleted_at_b) and updated_b == created_b

    # audit rows: who/what/success, signed with the keyring's Ed25519 signing key (64-byte signatures)
    audit = db_rows(db, 'SELECT action, user, secret_path, success, error, metadata, signature FROM audit_logs')
    actions = [(a[0], a[2], a[3]) for a in audit]
    for expected in [('secret.create', 'db/a', 1), ('secret.update', 'db/a', 1), ('secret.delete', 'db/b', 1)]:
        assert expected in actions
    assert ('auth.login', None, 1) in actions
    assert all(len(bytes.fromhex(a[6])) == 64 and a[5] == '{}' for a in audit)


def test_audit_signatures_verify_with_the_verify_key(nexus_server):
    client = nexus_server.client()
    client.create('sig/a', 'v')
    entries = client.audit().json()['logs']
    public = Ed25519PublicKey.from_public_bytes(decrypt_keyring(nexus_server.keys_dir, DEFAULT_PASSWORD)['verify'])
    entry = next(e for e in entries if e['action'] == 'secret.create')
    payload = json.dumps([entry['id'], entry['timestamp'], entry['action'], entry['user'], entry.get('secret_id', ''),
                          entry.get('secret_path', ''), entry['ip_address'], entry['user_agent'], entry['success'],
                          entry.get('error', '')], separators=(',', ':')).encode()
    public.verify(bytes.fromhex(entry['signature']), payload)  # raises InvalidSignature if not


def test_failures_are_audited_in_the_database(nexus_server):
    client = nexus_server.client()
    client.get('nope/missing')
    client.create('dup/x', 'v')
    client.create('dup/x', 'v')
    client.audit()
    rows = db_rows(nexus_server.db_path, 'SELECT action, secret_path, success, error FROM audit_logs WHERE success = 0')
    failures = {(r[0], r[1]) for r in rows}
    assert ('secret.read', 'nope/missing') in failures and ('secret.create', 'dup/x') in failures
    assert all(r[3] for r in rows)  # with the error text
