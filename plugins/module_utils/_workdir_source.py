# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A NEXUS working directory (e.g. a pre-restore copy) as a restore source.

Such a directory holds ``nexus.db``, maybe its ``-wal`` (committed rows a killed server left there)
or a hot ``-journal``, and ``data/keys``. Its files are copied - never moved, so the source stays a
restorable state - into the private staging tree, and the copy's WAL is folded in by a checkpoint:
what gets installed is one self-contained ``nexus.db``, and no WAL ever travels beside it.
Private to this collection.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat

from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import (
    DIR_FLAGS, O_CLOEXEC, O_NOFOLLOW, UnsafePath, open_dir_at, open_file_at,
)
from ansible_collections.nexus.secrets.plugins.module_utils._layout import (
    DB_COMPANION_SUFFIXES, DB_NAME, KEYS_NAME, KEYS_PARTS, ROLLBACK_JOURNAL_SUFFIX, WAL_SUFFIX,
)

# -shm is only an index that SQLite rebuilds from the WAL, so it is never copied.
COPIED_COMPANIONS = (WAL_SUFFIX, ROLLBACK_JOURNAL_SUFFIX)
COPY_CHUNK = 1024 * 1024


class SourceError(Exception):
    """A user-facing reason why the directory cannot be used as a restore source."""


def _copy_private(dir_fd, name, dst, shown, member):
    """Copy the regular file ``name`` inside ``dir_fd`` to a new 0600 ``dst``.

    The source may live in a directory the service account writes (a pre-restore copy in the data
    dir): it is opened with O_NOFOLLOW relative to its directory's fd, and the fd that is read is
    the one ``fstat`` proved to be a regular file, so no link swapped in at any moment is followed.
    """
    try:
        src_fd, st = open_file_at(dir_fd, name, shown)
    except UnsafePath as exc:
        raise SourceError(str(exc))
    except OSError as exc:
        raise SourceError('cannot read %s: %s' % (shown, exc.strerror or exc))
    try:
        out_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        with os.fdopen(out_fd, 'wb') as out:
            while True:
                chunk = os.read(src_fd, COPY_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
    finally:
        os.close(src_fd)
    return {'name': member, 'size': st.st_size, 'type': 'file', 'mode': '%04o' % stat.S_IMODE(st.st_mode)}


def _lexists_at(dir_fd, name):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


def fold_wal(db_path):
    """Checkpoint a copied database's WAL (or roll back its hot journal) into the file itself."""
    try:
        conn = sqlite3.connect(db_path, isolation_level=None)
        try:
            # Reading replays the WAL (or rolls back a hot journal); the checkpoint writes it into the file.
            if conn.execute('PRAGMA journal_mode').fetchone()[0].lower() == 'wal':
                conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise SourceError('the database in the directory cannot be opened: %s' % exc)
    for suffix in DB_COMPANION_SUFFIXES:
        path = db_path + suffix
        if os.path.lexists(path):
            if suffix == WAL_SUFFIX and os.path.getsize(path):
                raise SourceError('the WAL of the copied database could not be checkpointed')
            os.unlink(path)


def _open_subdir(dir_fd, name, shown):
    """fd of a subdirectory, or None when missing; SourceError for a link or a non-directory."""
    try:
        return open_dir_at(dir_fd, name, shown)
    except FileNotFoundError:
        return None
    except UnsafePath as exc:
        raise SourceError(str(exc))


def copy_working_dir(src_dir, tree):
    """Copy ``nexus.db`` (with its WAL folded in) and ``data/keys`` of ``src_dir`` into ``tree``.

    ``src_dir`` itself must not be a link; below it nothing is followed (``_copy_private``).
    """
    try:
        src_fd = os.open(src_dir, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SourceError('%s is a symbolic link or not a directory; give the directory itself' % src_dir)
        raise SourceError('cannot read %s: %s' % (src_dir, exc.strerror or exc))
    try:
        return _copy_tree(src_fd, src_dir, tree)
    finally:
        os.close(src_fd)


def _copy_tree(src_fd, src_dir, tree):
    if not _lexists_at(src_fd, DB_NAME):
        raise SourceError('the directory %s holds no nexus.db: nothing to restore' % src_dir)
    db = os.path.join(src_dir, DB_NAME)
    members = [_copy_private(src_fd, DB_NAME, os.path.join(tree, DB_NAME), db, DB_NAME)]
    for suffix in COPIED_COMPANIONS:
        if _lexists_at(src_fd, DB_NAME + suffix):
            _copy_private(src_fd, DB_NAME + suffix, os.path.join(tree, DB_NAME + suffix), db + suffix,
                          DB_NAME + suffix)
    outer, inner = KEYS_PARTS
    keys = os.path.join(src_dir, *KEYS_PARTS)
    data_fd = _open_subdir(src_fd, outer, os.path.join(src_dir, outer))
    keys_fd = None
    try:
        if data_fd is not None:
            keys_fd = _open_subdir(data_fd, inner, keys)
        if keys_fd is not None:
            os.mkdir(os.path.join(tree, outer), 0o700)
            os.mkdir(os.path.join(tree, *KEYS_PARTS), 0o700)
            members.append({'name': KEYS_NAME, 'size': 0, 'type': 'dir',
                            'mode': '%04o' % stat.S_IMODE(os.fstat(keys_fd).st_mode)})
            for name in sorted(os.listdir(keys_fd)):
                members.append(_copy_private(keys_fd, name, os.path.join(tree, KEYS_NAME, name),
                                             os.path.join(keys, name), KEYS_NAME + '/' + name))
    finally:
        for fd in (keys_fd, data_fd):
            if fd is not None:
                os.close(fd)
    fold_wal(os.path.join(tree, DB_NAME))
    return members
