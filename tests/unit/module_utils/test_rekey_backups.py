"""_rekey_backups: which password a backup's first bytes open with; which temp files are leftovers."""

from __future__ import annotations

from ansible_collections.nexus.secrets.plugins.module_utils import _rekey_backups
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import encrypt_bytes

OLD = 'Old-Backup-Password-1!'
NEW = 'New-Backup-Password-2?'


def test_password_of_head_from_the_first_bytes_only():
    blob = encrypt_bytes(OLD, b'\x1f\x8b\x08rest of a gzip stream')
    head = blob[:_rekey_backups.HEAD_BYTES]
    assert _rekey_backups.password_of_head(head, OLD, NEW) == _rekey_backups.OLD
    assert _rekey_backups.password_of_head(head, NEW, OLD) == _rekey_backups.NEW
    assert _rekey_backups.password_of_head(head, 'Third-Password-3#', NEW) == _rekey_backups.NEITHER
    assert _rekey_backups.password_of_head(head[:-1], OLD, NEW) == _rekey_backups.NEITHER
    not_gzip = encrypt_bytes(OLD, b'PK\x03\x04 a zip file')[:_rekey_backups.HEAD_BYTES]
    assert _rekey_backups.password_of_head(not_gzip, OLD, NEW) == _rekey_backups.NEITHER


def test_leftovers_are_only_our_temp_files(tmp_path):
    ours = ['.nexus-backup-2026-12-01-020000.tar.gz.enc.rekey-abc123.tmp',
            '.nexus-backup-2026-12-01-020000.tar.gz.enc.sha256.k2j_4x.tmp']
    theirs = ['nexus-backup-2026-12-01-020000.tar.gz.enc', 'nexus-backup-2026-12-01-020000.tar.gz.enc.sha256',
              '.notes.sha256.x.tmp', '.nexus-backup-2026-13-01-020000.tar.gz.enc.sha256.x.tmp', '.hidden.tmp']
    for name in ours + theirs:
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / '.nexus-backup-2026-12-02-020000.tar.gz.enc.rekey-dir.tmp').mkdir()
    removed = _rekey_backups.remove_leftovers(str(tmp_path))
    assert sorted(removed) == sorted(str(tmp_path / name) for name in ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs + ['.nexus-backup-2026-12-02-020000.tar.gz.enc.rekey-dir.tmp'])
