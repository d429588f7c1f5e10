# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A validated copy of a backup, staged ahead of a restore, so that a recovery decrypts it once.

``nexus_restore`` with ``stage_only`` decrypts, unpacks and validates the backup (``_verify``) into
a private directory inside the root-only state dir (``<parent of data_dir>/.nexus-secrets-restore/
<data dir name>.staged-<hex>``) and records a manifest beside it (``<data dir name>.staged``): the
backup file's identity (device, inode, size, mtime_ns) and SHA-256 (hashed as the decryption reads
it), the facts the validation proved (members, live secrets, which database check passed), and each
staged file's size, inode and mtime_ns. Nothing in the data dir is touched, and the server may run
meanwhile.

The next restore of the same ``src`` into the same data dir takes that copy instead of decrypting
again (``take``), but only when everything still matches: the manifest is a private file of ours,
written for this layout and this ``src``; the check it records is at least as deep as the one asked
for; the staged directory is the very one recorded (device and inode), still private; its files are
the recorded ones (inode, size, mtime_ns; no file added or missing); and the backup file has the
recorded identity and the recorded SHA-256 (it is read once more, whole). Anything else: the copy is
removed and the restore does its full pass. The keyring password is never recorded: the restore
checks the staged keyring with its own ``key_password``.

The state dir is written by this user only (``_swap.open_state_dir`` checks it is ours, 0700, no
link), so names in it are trusted; names in the data dir never are (docs/security.md). Every
staged copy of a data dir is removed by its next stage or restore run, used or not.
Private to this collection.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
import sqlite3
import stat

from urllib.parse import quote

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _swap, _verify
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import (
    UnsafePath, check_private, fd_path, lstat_at, open_dir_at, remove_tree_at, sha256_fd,
)

MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = '.staged'
DIR_INFIX = '.staged-'
DEPTHS = {'quick': 1, 'full': 2}
MANIFEST_KEYS = frozenset(['format', 'data_dir', 'db_path', 'keys_dir', 'src', 'src_id', 'src_sha256', 'dir',
                           'dir_id', 'depth', 'members', 'secrets', 'files'])


class StagedCopyUnusable(Exception):
    """Why a recorded staged copy cannot be used (the restore then does its full pass)."""


def manifest_name(layout):
    return os.path.basename(layout.data_dir) + MANIFEST_SUFFIX


def _dir_re(layout):
    return re.compile(r'\A' + re.escape(os.path.basename(layout.data_dir) + DIR_INFIX) + r'[0-9a-f]{12}\Z')


def remove_all(layout, state_fd):
    """Forget the manifest, then remove every staged copy of this data dir in the state dir."""
    _swap.checkpoint('forget staged copy')
    try:
        os.unlink(manifest_name(layout), dir_fd=state_fd)
    except FileNotFoundError:
        pass
    pattern = _dir_re(layout)
    for name in sorted(os.listdir(state_fd)):
        if not pattern.match(name):
            continue
        st = lstat_at(state_fd, name)
        if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            _swap.checkpoint('remove staged copy')
            remove_tree_at(state_fd, name, os.path.join(layout.state_dir, name))
    os.fsync(state_fd)


def _identity(st):
    return {'dev': st.st_dev, 'ino': st.st_ino, 'size': st.st_size, 'mtime_ns': st.st_mtime_ns}


def source_identity(src):
    """``(identity, sha256)`` of the backup file, read whole through one fd; unchanged while read."""
    fd = os.open(src, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise StagedCopyUnusable('%s is not a regular file' % src)
        digest = sha256_fd(fd)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if _identity(before) != _identity(after):
        raise StagedCopyUnusable('the backup %s changed while it was read' % src)
    return _identity(after), digest


def _file_facts(dir_fd, name, shown):
    st = lstat_at(dir_fd, name)
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        raise StagedCopyUnusable('%s is missing or not a plain regular file' % shown)
    return st


def _tree_files(tree_fd, tree_shown):
    """``{relative name: stat}`` of nexus.db and the key files in a staged tree (reached by fds, no links)."""
    found = {_verify.DB_NAME: _file_facts(tree_fd, _verify.DB_NAME, os.path.join(tree_shown, _verify.DB_NAME))}
    keys_shown = os.path.join(tree_shown, _verify.KEYS_NAME)
    data_fd = open_dir_at(tree_fd, 'data', os.path.join(tree_shown, 'data'))
    try:
        keys_fd = open_dir_at(data_fd, 'keys', keys_shown)
    finally:
        os.close(data_fd)
    try:
        for name in sorted(os.listdir(keys_fd)):
            found[_verify.KEYS_NAME + '/' + name] = _file_facts(keys_fd, name, os.path.join(keys_shown, name))
    finally:
        os.close(keys_fd)
    return found


def _fsync_tree(staged):
    """Make the staged files durable now, so that the restore's own fsync finds nothing left to write."""
    paths = [staged.db_path] + [os.path.join(staged.keys_dir, n) for n in staged.key_names()]
    paths += [staged.keys_dir, os.path.dirname(staged.keys_dir), staged.root]
    for path in paths:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _ReadHash(object):
    """SHA-256 and length of the bytes handed to ``update``."""

    def __init__(self):
        self._sha256 = hashlib.sha256()
        self.size = 0

    def update(self, chunk):
        self._sha256.update(chunk)
        self.size += len(chunk)

    def hexdigest(self):
        return self._sha256.hexdigest()


def stage(layout, state_fd, src, backup_password, key_password=None, depth='quick', max_total_bytes=None):
    """Validate ``src`` into a new staged copy in the state dir and record it; return ``(staged, manifest)``.

    Raises ``_verify.BackupInvalid`` (nothing recorded, the copy removed), or OSError/UnsafePath.
    Earlier staged copies of this data dir are removed first.
    """
    remove_all(layout, state_fd)
    name = os.path.basename(layout.data_dir) + DIR_INFIX + binascii.hexlify(os.urandom(6)).decode('ascii')
    shown = os.path.join(layout.state_dir, name)
    src = os.path.abspath(src)
    _swap.checkpoint('mkdir staged copy')
    os.mkdir(name, 0o700, dir_fd=state_fd)
    dir_fd = open_dir_at(state_fd, name, shown)
    try:
        dir_st = check_private(dir_fd, shown, 'the staged copy')
        work = fd_path(dir_fd) or shown
        try:
            before = os.stat(src)
        except OSError as exc:
            raise _verify.BackupInvalid('cannot read the backup %s: %s' % (src, exc.strerror or exc))
        # The backup file is hashed as the decryption reads it, on the reader thread: no second read.
        read = _ReadHash()
        staged = _verify.stage_backup(src, backup_password, work, key_password=key_password,
                                      max_total_bytes=max_total_bytes, depth=depth, observe=read.update)
        _fsync_tree(staged)
        try:
            src_id, src_sha256 = _identity(os.stat(src)), read.hexdigest()
            if read.size != before.st_size:  # not read to its end: read it whole, once more
                src_id, src_sha256 = source_identity(src)
        except (StagedCopyUnusable, OSError) as exc:
            raise _verify.BackupInvalid('the backup %s changed while it was staged (%s)' % (src, exc))
        if src_id != _identity(before):
            raise _verify.BackupInvalid('the backup %s changed while it was staged' % src)
        tree_fd = open_dir_at(dir_fd, _verify.TREE_NAME, os.path.join(shown, _verify.TREE_NAME))
        try:
            files = dict((rel, {'size': st.st_size, 'ino': st.st_ino, 'mtime_ns': st.st_mtime_ns})
                         for rel, st in _tree_files(tree_fd, os.path.join(shown, _verify.TREE_NAME)).items())
        finally:
            os.close(tree_fd)
        manifest = {
            'format': MANIFEST_FORMAT, 'data_dir': layout.data_dir, 'db_path': layout.db_path,
            'keys_dir': layout.keys_dir, 'src': src, 'src_id': src_id, 'src_sha256': src_sha256,
            'dir': name, 'dir_id': [dir_st.st_dev, dir_st.st_ino], 'depth': depth,
            'members': staged.members, 'secrets': staged.secrets, 'files': files,
        }
        _swap.checkpoint('record staged copy')
        _swap.write_private(layout, manifest_name(layout), json.dumps(manifest, sort_keys=True).encode('utf-8'))
    except BaseException:
        try:
            remove_tree_at(state_fd, name, shown)
        except (OSError, UnsafePath):
            pass  # the next stage or restore removes it
        raise
    finally:
        os.close(dir_fd)
    return staged, manifest


def paths(layout, manifest):
    """What to delete to drop a staged copy, the manifest first (for a recovery that did not use it)."""
    return [os.path.join(layout.state_dir, manifest_name(layout)), os.path.join(layout.state_dir, manifest['dir'])]


def read_manifest(layout):
    """The recorded manifest, or None; StagedCopyUnusable when it is not one this collection wrote."""
    try:
        data = _swap.read_private(layout, manifest_name(layout), 'the staged-copy manifest')
    except _swap.SwapError as exc:
        raise StagedCopyUnusable(str(exc))
    if data is None:
        return None
    try:
        manifest = json.loads(data.decode('utf-8'))
    except ValueError:
        raise StagedCopyUnusable('its manifest is corrupt')
    if not isinstance(manifest, dict) or set(manifest) != MANIFEST_KEYS or manifest['format'] != MANIFEST_FORMAT:
        raise StagedCopyUnusable('its manifest is not one this version wrote')
    return manifest


def take(layout, state_fd, src, depth):
    """The name (in the state dir) and manifest of a usable staged copy of ``src``, or ``(None, reason)``.

    ``reason`` is None when no copy was staged. An unusable copy is removed.
    """
    try:
        manifest = read_manifest(layout)
        if manifest is None:
            remove_all(layout, state_fd)  # a copy whose staging was interrupted before it was recorded
            return None, None
        _check(layout, state_fd, manifest, os.path.abspath(src), depth)
    except (StagedCopyUnusable, UnsafePath, OSError, ValueError, KeyError, TypeError) as exc:
        remove_all(layout, state_fd)
        return None, 'the staged copy was not used (%s); the backup was validated again' % exc
    return manifest['dir'], manifest


def live_secrets(data_dir, src):
    """``{path: (id, version)}`` of the live secrets in the staged copy of ``src`` for ``data_dir``, or None.

    Read-only (nothing is removed or recorded): None when no staged copy matches ``src`` exactly as a
    restore would require (identity and SHA-256 of the file, the recorded directory and files).
    """
    layout = _layout.Layout(data_dir)
    try:
        state_fd = _swap.open_state_dir(layout, create=False)
    except (UnsafePath, OSError):
        return None
    if state_fd is None:
        return None
    try:
        manifest = read_manifest(layout)
        if manifest is None:
            return None
        _check(layout, state_fd, manifest, os.path.abspath(src), 'quick', same_layout=False)
        shown = os.path.join(layout.state_dir, manifest['dir'], _verify.TREE_NAME)
        dir_fd = open_dir_at(state_fd, manifest['dir'], os.path.dirname(shown))
        try:
            tree_fd = open_dir_at(dir_fd, _verify.TREE_NAME, shown)
        finally:
            os.close(dir_fd)
        try:
            db = os.path.join(fd_path(tree_fd) or shown, _verify.DB_NAME)
            conn = sqlite3.connect('file:%s?mode=ro&immutable=1' % quote(db), uri=True)
            try:
                rows = conn.execute('SELECT path, id, version FROM secrets WHERE deleted_at IS NULL').fetchall()
            finally:
                conn.close()
        finally:
            os.close(tree_fd)
        return dict((row[0], (row[1], row[2])) for row in rows)
    except (StagedCopyUnusable, UnsafePath, OSError, ValueError, KeyError, TypeError, sqlite3.Error):
        return None
    finally:
        os.close(state_fd)


def _check(layout, state_fd, manifest, src, depth, same_layout=True):
    for what in (('data_dir', 'db_path', 'keys_dir') if same_layout else ('data_dir',)):
        if manifest[what] != getattr(layout, what):
            raise StagedCopyUnusable('it was staged for %s=%s' % (what, manifest[what]))
    if manifest['src'] != src:
        raise StagedCopyUnusable('it was staged from %s, not %s' % (manifest['src'], src))
    if DEPTHS.get(manifest['depth'], 0) < DEPTHS[depth]:
        raise StagedCopyUnusable('it passed PRAGMA quick_check only, and integrity_check=full was asked')
    name = manifest['dir']
    if not isinstance(name, str) or not _dir_re(layout).match(name):
        raise StagedCopyUnusable('its manifest names no staged copy of this data dir')
    shown = os.path.join(layout.state_dir, name)
    dir_fd = open_dir_at(state_fd, name, shown)
    try:
        st = check_private(dir_fd, shown, 'the staged copy')
        if [st.st_dev, st.st_ino] != manifest['dir_id']:
            raise StagedCopyUnusable('%s is not the directory that was staged' % shown)
        tree_fd = open_dir_at(dir_fd, _verify.TREE_NAME, os.path.join(shown, _verify.TREE_NAME))
        try:
            found = _tree_files(tree_fd, os.path.join(shown, _verify.TREE_NAME))
        finally:
            os.close(tree_fd)
    finally:
        os.close(dir_fd)
    recorded = manifest['files']
    if sorted(found) != sorted(recorded):
        raise StagedCopyUnusable('the staged files are not the ones recorded')
    for rel, st in found.items():
        want = recorded[rel]
        if (st.st_size, st.st_ino, st.st_mtime_ns) != (want['size'], want['ino'], want['mtime_ns']):
            raise StagedCopyUnusable('the staged %s changed since it was validated' % rel)
    try:
        now = os.stat(src)
    except OSError as exc:
        raise StagedCopyUnusable('the backup %s cannot be read: %s' % (src, exc.strerror or exc))
    if _identity(now) != manifest['src_id']:
        raise StagedCopyUnusable('the backup %s is not the file that was staged (another inode, size or '
                                 'modification time)' % src)
    src_id, digest = source_identity(src)
    if src_id != manifest['src_id'] or digest != manifest['src_sha256']:
        raise StagedCopyUnusable('the backup %s changed since it was staged (SHA-256 differs)' % src)


def adopt(layout, state_fd, name, staging_parent, staging_name):
    """Move the staged copy ``name`` from the state dir to ``<staging_parent>/<staging_name>`` and forget it.

    The staging path is recorded (``_swap.record_staging``) before the move, so that a crash leaves
    nothing behind that the next run would not remove. OSError (EXDEV: another filesystem) when
    it cannot be moved: the caller removes the copy and does the full pass.
    """
    target = os.path.join(staging_parent, staging_name)
    _swap.record_staging(layout, [target])
    _swap.checkpoint('adopt staged copy')
    with _swap.opened_dir(layout, staging_parent) as pfd:
        os.rename(name, staging_name, src_dir_fd=state_fd, dst_dir_fd=pfd)
        os.fsync(pfd)
    os.fsync(state_fd)
    _swap.checkpoint('forget adopted copy')
    try:
        os.unlink(manifest_name(layout), dir_fd=state_fd)
        os.fsync(state_fd)
    except FileNotFoundError:
        pass
    return target
