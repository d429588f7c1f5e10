"""_s3: host prefixes, retention over object names, sidecars, 'before', and bounded-memory multipart
against a real rclone serve s3 (the client's peak RSS does not grow with the file)."""

from __future__ import annotations

import datetime
import hashlib
import os
import threading

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _s3
from tests.helpers.s3_server import ACCESS_KEY, SECRET_KEY, S3Server

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
    assert _s3.parse_sidecar(_s3.sidecar_line(digest, NAMES[0]), 'here') == digest
    for bad in (b'', b'abc  name\n', b'\xff' * 70):
        with pytest.raises(_s3.S3Error):
            _s3.parse_sidecar(bad, 'here')
    assert _s3.parse_before('2025-12-04') == datetime.datetime(2025, 12, 4)
    assert _s3.parse_before('2025-12-04 09:30:00') == datetime.datetime(2025, 12, 4, 9, 30)
    assert _s3.parse_before(None) is None
    with pytest.raises(_s3.S3Error):
        _s3.parse_before('yesterday')
    listing = [{'time': '2025-12-04T00:15:00'}, {'time': '2025-12-03T00:15:00'}]
    assert _s3.filter_before(listing, datetime.datetime(2025, 12, 4)) == listing[1:]


def test_multipart_upload_memory_is_bounded_by_parts_in_flight(tmp_path):
    """96 MiB in 5 MiB parts, one in flight: the process grows by far less than the file."""
    psutil = pytest.importorskip('psutil')
    src = tmp_path / NAMES[0]
    with open(src, 'wb') as fh:
        for dummy in range(12):
            fh.write(os.urandom(8 * 1024 * 1024))
    server = S3Server(tmp_path / 's3')
    server.bucket('b')
    server.start()
    try:
        client = _s3.make_client(server.endpoint_url, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        _s3.list_backups(client, 'b', 'p', 'h')  # warm up imports and the connection pool
        process = psutil.Process()
        before = process.memory_info().rss
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.wait(0.005):
                peak[0] = max(peak[0], process.memory_info().rss)

        sampler = threading.Thread(target=sample)
        fd = os.open(src, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            digest = _s3.file_sha256(fd, size)
            sampler.start()
            _s3._upload_multipart(client, 'b', 'p/h/' + NAMES[0], fd, size, digest, 5 * _s3.MIB, 1)  # pylint: disable=protected-access
        finally:
            done.set()
            if sampler.is_alive():
                sampler.join()
            os.close(fd)
        assert _s3.object_sha256(client, 'b', 'p/h/' + NAMES[0]) == (digest, size)
    finally:
        server.stop()
    assert peak[0] - before < 40 * 1024 * 1024, (before, peak[0])
