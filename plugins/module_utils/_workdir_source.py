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

import os
import shutil
import sqlite3
import stat

DB_NAME = 'nexus.db'
KEYS_NAME = 'data/keys'
# -shm is only an index that SQLite rebuilds from the WAL, so it is never copied.
DB_COMPANIONS = ('-wal', '-journal')
COPY_CHUNK = 1024 * 1024


class SourceError(Exception):
    """A user-facing reason why the directory cannot be used as a restore source."""


def _copy_private(src, dst, name):
    try:
        st = os.lstat(src)
    except OSError as exc:
        raise SourceError('cannot read %s: %s' % (src, exc.strerror or exc))
    if not stat.S_ISREG(st.st_mode):
        raise SourceError('%s is not a regular file' % src)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as out, open(src, 'rb') as fh:
        shutil.copyfileobj(fh, out, COPY_CHUNK)
    return {'name': name, 'size': st.st_size, 'type': 'file', 'mode': '%04o' % stat.S_IMODE(st.st_mode)}


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
    for suffix in ('-wal', '-shm', '-journal'):
        path = db_path + suffix
        if os.path.lexists(path):
            if suffix == '-wal' and os.path.getsize(path):
                raise SourceError('the WAL of the copied database could not be checkpointed')
            os.unlink(path)


def copy_working_dir(src_dir, tree):
    """Copy ``nexus.db`` (with its WAL folded in) and ``data/keys`` of ``src_dir`` into ``tree``."""
    db = os.path.join(src_dir, DB_NAME)
    if not os.path.lexists(db):
        raise SourceError('the directory %s holds no nexus.db: nothing to restore' % src_dir)
    members = [_copy_private(db, os.path.join(tree, DB_NAME), DB_NAME)]
    for suffix in DB_COMPANIONS:
        if os.path.lexists(db + suffix):
            _copy_private(db + suffix, os.path.join(tree, DB_NAME + suffix), DB_NAME + suffix)
    keys = os.path.join(src_dir, 'data', 'keys')
    if os.path.isdir(keys) and not os.path.islink(keys):
        os.mkdir(os.path.join(tree, 'data'), 0o700)
        os.mkdir(os.path.join(tree, 'data', 'keys'), 0o700)
        members.append({'name': KEYS_NAME, 'size': 0, 'type': 'dir',
                        'mode': '%04o' % stat.S_IMODE(os.stat(keys).st_mode)})
        for name in sorted(os.listdir(keys)):
            members.append(_copy_private(os.path.join(keys, name), os.path.join(tree, 'data', 'keys', name),
                                         KEYS_NAME + '/' + name))
    fold_wal(os.path.join(tree, DB_NAME))
    return members
