"""nexus_backup_info's ``before``: parsing the time and keeping only backups taken at or before it."""

from __future__ import annotations

import datetime
import os

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _backup_info


def make(folder, name, mtime=None):
    path = folder / name
    path.write_bytes(b'not checked when listing')
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def names(backups):
    return [b['name'] for b in backups]


def test_parse_before_local_and_offset():
    assert _backup_info.parse_before('2025-03-02') == datetime.datetime(2025, 3, 2)
    assert _backup_info.parse_before(' 2025-03-02T12:30:00 ') == datetime.datetime(2025, 3, 2, 12, 30)
    utc = _backup_info.parse_before('2025-03-02T12:00:00Z')
    expected = datetime.datetime(2025, 3, 2, 12, tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)
    assert utc == expected and utc.tzinfo is None
    with pytest.raises(_backup_info.InfoError, match='ISO 8601'):
        _backup_info.parse_before('yesterday')


def test_inventory_keeps_backups_at_or_before(tmp_path):
    for day in ('01', '02', '03'):
        make(tmp_path, 'nexus-backup-2025-03-%s-120000.tar.gz.enc' % day)
    # No time in the name: its modification time counts.
    make(tmp_path, 'nexus-backup-manual.tar.gz.enc', mtime=datetime.datetime(2025, 3, 2, 18).timestamp())
    backups, latest = _backup_info.inventory(str(tmp_path), before=datetime.datetime(2025, 3, 2, 12))
    assert names(backups) == ['nexus-backup-2025-03-02-120000.tar.gz.enc', 'nexus-backup-2025-03-01-120000.tar.gz.enc']
    assert latest['name'] == 'nexus-backup-2025-03-02-120000.tar.gz.enc'
    backups, dummy = _backup_info.inventory(str(tmp_path), before=datetime.datetime(2025, 3, 2, 23))
    assert names(backups)[0] == 'nexus-backup-manual.tar.gz.enc' and len(backups) == 3
    backups, latest = _backup_info.inventory(str(tmp_path), before=datetime.datetime(2025, 2, 1))
    assert backups == [] and latest is None
    assert len(_backup_info.inventory(str(tmp_path))[0]) == 4
