"""Fixtures: a real S3-compatible server (rclone serve s3) on a free loopback port, with a bucket."""

from __future__ import annotations

import pytest

from tests.helpers.s3_server import S3Server
# The three-host fleet of the role tests (reference servers with their environment files), shared.
from tests.integration.roles.test_fleet import fleet  # noqa: F401  pylint: disable=unused-import

BUCKET = 'nexus-test'


@pytest.fixture
def s3_server(tmp_path):
    for attempt in range(3):  # a free port can be taken by someone else before rclone binds it
        server = S3Server(tmp_path / 's3-root')
        server.bucket(BUCKET)
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()
