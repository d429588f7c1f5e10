"""_s3's multipart upload against a real rclone serve s3: the client's peak RSS does not grow with the file."""

from __future__ import annotations

import os
import threading

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _s3
from tests.helpers.s3_server import ACCESS_KEY, SECRET_KEY, S3Server

NAME = 'nexus-backup-2025-12-01-001500.tar.gz.enc'


def test_multipart_upload_memory_is_bounded_by_parts_in_flight(tmp_path):
    """96 MiB in 5 MiB parts, one in flight: the process grows by far less than the file."""
    psutil = pytest.importorskip('psutil')
    src = tmp_path / NAME
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
            _s3._upload_multipart(client, 'b', 'p/h/' + NAME, fd, size, digest, 5 * _s3.MIB, 1)  # pylint: disable=protected-access
        finally:
            done.set()
            if sampler.is_alive():
                sampler.join()
            os.close(fd)
        assert _s3.object_sha256(client, 'b', 'p/h/' + NAME) == (digest, size)
    finally:
        server.stop()
    assert peak[0] - before < 40 * 1024 * 1024, (before, peak[0])
