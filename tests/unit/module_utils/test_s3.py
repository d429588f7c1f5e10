"""_s3 without a server: host prefixes, retention over object names, sidecars, 'before'.

(Needs no boto3: the module_utils import it guarded. The transfers are tested in tests/integration/s3;
the check that a file is a backup under a password before it replaces an object is tested here.)"""

from __future__ import annotations

import datetime
import hashlib
import os

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _s3
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import encrypt_bytes

NAMES = ['nexus-backup-2025-12-0%d-001500.tar.gz.enc' % day for day in (1, 2, 3, 4)]


def test_host_prefix_keeps_hosts_apart_and_refuses_traversal():
    assert _s3.host_prefix('nexus-backups', 'web1') == 'nexus-backups/web1/'
    assert _s3.host_prefix('/a//b/', 'web1') == 'a/b/web1/'
    assert _s3.host_prefix('', 'web1') == 'web1/'
    for host in ('', 'a/b', '..', '.'):
        with pytest.raises(_s3.S3Error):
            _s3.host_prefix('p', host)
    with pytest.raises(_s3.S3Error):
        _s3.host_prefix('p/../q', 'web1')


def test_remote_retention_uses_the_local_rules_and_never_prunes_the_new_backup():
    objects = [{'name': name} for name in NAMES[:3]] + [{'name': 'not-a-backup.txt'}]
    assert _s3.plan_remote_retention(objects, NAMES[3], {'keep_last': 2}) == [NAMES[1], NAMES[0]]
    assert _s3.plan_remote_retention(objects, NAMES[3], {'keep_last': None}) == []
    # A new backup older than the others still survives its own upload.
    assert NAMES[0] not in _s3.plan_remote_retention(objects, NAMES[0], {'keep_last': 1})


def test_sidecar_and_before_parsing():
    digest = hashlib.sha256(b'x').hexdigest()
    assert _s3.sidecar_digest(_layout.sidecar_line(digest, NAMES[0]).encode(), 'here') == digest
    for bad in (b'', b'abc  name\n', b'\xff' * 70):
        with pytest.raises(_s3.S3Error):
            _s3.sidecar_digest(bad, 'here')
    assert _s3.parse_before('2025-12-04') == datetime.datetime(2025, 12, 4)
    assert _s3.parse_before('2025-12-04 09:30:00') == datetime.datetime(2025, 12, 4, 9, 30)
    assert _s3.parse_before(None) is None
    with pytest.raises(_s3.S3Error):
        _s3.parse_before('yesterday')
    listing = [{'time': '2025-12-04T00:15:00'}, {'time': '2025-12-03T00:15:00'}]
    assert _s3.filter_before(listing, datetime.datetime(2025, 12, 4)) == listing[1:]


def test_authenticate_backup_accepts_only_a_whole_envelope_under_the_password(tmp_path):
    good = encrypt_bytes('Right-Password-123!', b'\x1f\x8b\x08' + b'payload' * 1000)
    cases = {'good': good, 'flipped': good[:200] + bytes([good[200] ^ 1]) + good[201:], 'truncated': good[:-1]}
    for label, data in cases.items():
        path = tmp_path / label
        path.write_bytes(data)
        fd = os.open(str(path), os.O_RDONLY)
        try:
            digest = hashlib.sha256(data).hexdigest()
            if label == 'good':
                _s3.authenticate_backup(fd, len(data), digest, 'Right-Password-123!', label)
                with pytest.raises(_s3.S3Error, match='not a valid backup under backup_password'):
                    _s3.authenticate_backup(fd, len(data), digest, 'Wrong-Password-123!', label)
                with pytest.raises(_s3.S3Error, match='changed while it was checked'):
                    _s3.authenticate_backup(fd, len(data), '0' * 64, 'Right-Password-123!', label)
            else:
                with pytest.raises(_s3.S3Error, match='not a valid backup under backup_password'):
                    _s3.authenticate_backup(fd, len(data), digest, 'Right-Password-123!', label)
        finally:
            os.close(fd)
