# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filesystem helpers: private directories and atomic 0600 writes.

Private to this collection; not a public API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile


def fsync_path(path):
    """Make a file's data, or a rename or unlink inside a directory, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(parent, prefix):
    """Create a 0700 directory inside ``parent`` (same filesystem, so renames are atomic)."""
    return tempfile.mkdtemp(prefix=prefix, dir=parent)


@contextlib.contextmanager
def atomic_write(path, mode=0o600):
    """Yield a binary file object; on success it replaces ``path`` atomically.

    The temp file is created 0600 beside ``path`` (so nobody else can read it while it is
    written), fsynced, chmod-ed to ``mode`` and renamed over ``path``. On any exception the
    temp file is removed and ``path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_path(directory)


def remove_tree(path):
    """Remove a directory tree if it exists; never raise for a missing path."""
    shutil.rmtree(path, ignore_errors=True)
