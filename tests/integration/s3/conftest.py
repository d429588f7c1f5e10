"""Fixtures: a real S3-compatible server (rclone serve s3) on a free loopback port, with a bucket."""

from __future__ import annotations

import pytest

from tests.helpers.s3_server import S3Server

BUCKET = 'nexus-test'


@pytest.fixture
def s3_server(tmp_path):
    server = S3Server(tmp_path / 's3-root')
    server.bucket(BUCKET)
    server.start()
    try:
        yield server
    finally:
        server.stop()
