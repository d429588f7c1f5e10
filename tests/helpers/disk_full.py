"""Inject ENOSPC at the write layer of backups and restores (the worker thread of ``_iothreads``)."""

from __future__ import annotations

import errno
import os

from ansible_collections.nexus.secrets.plugins.module_utils import _iothreads


class _FillingDisk(object):
    """Writes through to ``fh`` until ``limit`` bytes would be exceeded, then raises ENOSPC."""

    def __init__(self, fh, limit):
        self.fh, self.limit, self.size = fh, limit, 0

    def write(self, data):
        if self.size + len(data) > self.limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.size += len(data)
        return self.fh.write(data)


def fill_disk_after(monkeypatch, limit):
    """Every file written from now on by a worker thread takes ``limit`` bytes, then the disk is full."""
    real_init = _iothreads._WorkerWrites.__init__

    def init(self, fh, flusher, observe):
        real_init(self, _FillingDisk(fh, limit), flusher, observe)

    monkeypatch.setattr(_iothreads._WorkerWrites, '__init__', init)
