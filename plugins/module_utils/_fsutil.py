# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filesystem helpers: private directories, atomic 0600 writes, and link-free walks.

The modules run as root over a data directory that the NEXUS service account writes. Below such a
directory nothing is reached by a path the kernel resolves on its own: each component is opened with
``O_NOFOLLOW`` relative to the directory fd of its parent (``open_beneath``), files are opened
``O_NOFOLLOW`` and checked with ``fstat`` on the descriptor that is then used, and renames, unlinks
and mkdirs take directory fds. A link where a directory or file is expected raises ``UnsafePath``.

Private to this collection; not a public API.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile

O_CLOEXEC = getattr(os, 'O_CLOEXEC', 0)
O_NOFOLLOW = getattr(os, 'O_NOFOLLOW', 0)
O_DIRECTORY = getattr(os, 'O_DIRECTORY', 0)
DIR_FLAGS = os.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
# O_NONBLOCK: a FIFO planted where a file is expected must not hang the open.
READ_FLAGS = os.O_RDONLY | O_NOFOLLOW | os.O_NONBLOCK | O_CLOEXEC
HASH_CHUNK = 1024 * 1024
MAX_TREE_DEPTH = 32


class UnsafePath(Exception):
    """A path under a directory another account writes is not what it must be (a link, a foreign owner...)."""


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


# --- link-free access below a directory fd -------------------------------------------------------

def _what(dir_fd, name):
    """'a symbolic link', 'not a directory'... for a message; None when it is missing."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return 'a symbolic link'
    if stat.S_ISDIR(st.st_mode):
        return 'a directory'
    if stat.S_ISREG(st.st_mode):
        return 'a regular file'
    return 'a special file'


def open_dir_at(dir_fd, name, shown):
    """Open the directory ``name`` inside ``dir_fd`` without following a link; ``shown``: its path for messages.

    Raises FileNotFoundError when it is missing, UnsafePath when it is a link or no directory.
    """
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise UnsafePath('%s is %s where a directory is expected; refusing to follow it'
                             % (shown, _what(dir_fd, name) or 'not a directory'))
        raise


def open_beneath(anchor_fd, relpath, shown_anchor, check=None):
    """Open directory ``relpath`` below ``anchor_fd`` one component at a time, never following a link.

    ``check(path, fd)`` (optional) is called for each directory opened on the way. Returns a new fd.
    """
    fd = os.dup(anchor_fd)
    shown = shown_anchor
    try:
        for part in [p for p in relpath.split(os.sep) if p not in ('', '.')]:
            if part == '..':
                raise UnsafePath('%s: ".." is not allowed here' % os.path.join(shown, relpath))
            shown = os.path.join(shown, part)
            nxt = open_dir_at(fd, part, shown)
            os.close(fd)
            fd = nxt
            if check is not None:
                check(shown, fd)
        return fd
    except BaseException:
        os.close(fd)
        raise


def check_private(fd, shown, what='directory'):
    """Raise UnsafePath unless ``fd`` is owned by this process's user and writable by nobody else."""
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise UnsafePath('%s %s is not private to uid %d (owner uid %d, mode %04o): it was not made by this '
                         'collection, or was changed since; inspect it by hand'
                         % (what, shown, os.geteuid(), st.st_uid, stat.S_IMODE(st.st_mode)))
    return st


def lstat_at(dir_fd, name):
    """``os.lstat`` of ``name`` inside ``dir_fd``; None when it is missing."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def open_file_at(dir_fd, name, shown):
    """Open a regular file for reading without following a link; ``(fd, fstat)``; UnsafePath otherwise."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafePath('%s is not a regular file but a symbolic link; refusing to follow it'
                             % shown)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath('%s is not a regular file' % shown)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def sha256_fd(fd):
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    for chunk in iter(lambda: os.read(fd, HASH_CHUNK), b''):
        digest.update(chunk)
    return digest.hexdigest()


def remove_tree_at(dir_fd, name, shown, depth=0):
    """Remove ``name`` (file, link or tree) inside ``dir_fd``; links are removed, never followed.

    A tree deeper than MAX_TREE_DEPTH is refused (UnsafePath) rather than recursed into without bound.
    """
    st = lstat_at(dir_fd, name)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    if depth >= MAX_TREE_DEPTH:
        raise UnsafePath('%s is nested more than %d directories deep; left in place' % (shown, MAX_TREE_DEPTH))
    fd = open_dir_at(dir_fd, name, shown)
    try:
        for child in os.listdir(fd):
            remove_tree_at(fd, child, os.path.join(shown, child), depth + 1)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def tree_files(dir_fd, name, shown, depth=0):
    """Paths (for messages) of everything but directories in the tree ``name`` inside ``dir_fd``."""
    st = lstat_at(dir_fd, name)
    if st is None:
        return []
    if not stat.S_ISDIR(st.st_mode):
        return [shown]
    if depth >= MAX_TREE_DEPTH:
        return [shown]
    fd = open_dir_at(dir_fd, name, shown)
    try:
        found = []
        for child in sorted(os.listdir(fd)):
            found += tree_files(fd, child, os.path.join(shown, child), depth + 1)
        return found
    finally:
        os.close(fd)


def fd_path(fd):
    """A path that reaches the directory ``fd`` itself (not whatever its name points to later), or None.

    ``/proc/self/fd/N``: code that only takes paths (SQLite, the archive writer) then works inside
    the very directory that was opened and checked, even if its name is swapped meanwhile.
    """
    path = '/proc/self/fd/%d' % fd
    try:
        if os.path.samestat(os.stat(path), os.fstat(fd)):
            return path
    except OSError:
        pass
    return None
