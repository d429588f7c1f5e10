# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Re-wrap a NEXUS keyring under a new ``NEXUS_KEY_PASSWORD``: all four key files or none, crash-safe.

The key files (docs/nexus-behaviour.md §2) hold the same keys before and after; only the wrapping
changes: a fresh salt shared by all four, a fresh nonce each, the AES key derived from the new
password. A server started with a password that opens only some of them replaces the whole
keyring (§1), so the four must change together:

1. the new files are written into a fresh sibling directory of ``keys``
   (``.nexus-rekey-XXXXXXXX``, 0700, files 0600 from their first byte, owner as before), fsynced,
   and read back and decrypted;
2. ``renameat2(RENAME_EXCHANGE)`` swaps the two directories in one step; the parent is fsynced;
3. the old files, now in the sibling directory, are removed.

A crash before step 2 leaves the old keyring in ``keys``; after it, the new one. Either way a
sibling ``.nexus-rekey-*`` directory may be left: it never holds the live keyring, and the next
run removes it. The data dir belongs to the NEXUS account, so it is walked with directory fds and
``O_NOFOLLOW``: a link planted there is refused, never followed. Linux only (``renameat2``).
Private to this collection.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat

from ansible_collections.nexus.secrets.plugins.module_utils import _keyring, _layout, _liveness, _swap
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import UnsafePath

STAGING_PREFIX = '.nexus-rekey-'
RENAME_EXCHANGE = 2
# renameat2 syscall numbers, for a libc without the wrapper (glibc < 2.28).
_SYS_RENAMEAT2 = {'x86_64': 316, 'aarch64': 276, 'riscv64': 276, 'i386': 353, 'i686': 353, 'armv7l': 382,
                  'ppc64le': 357, 'ppc64': 357, 's390x': 347}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
DIR_MODE = 0o700
FILE_MODE = 0o600


class RekeyFailed(Exception):
    """A user-facing reason; the key files are as they were. ``holders``: who holds the data dir's files."""

    def __init__(self, msg, holders=None):
        super(RekeyFailed, self).__init__(msg)
        self.holders = holders or []


def checkpoint(label):
    """A named point before each change to the data dir (tests kill the process here)."""


def _renameat2():
    """A callable ``f(olddirfd, oldname, newdirfd, newname, flags) -> int``, or None."""
    libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter is linked with
    func = getattr(libc, 'renameat2', None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        func.restype = ctypes.c_int
        return func
    number = _SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long

    def call(olddirfd, oldname, newdirfd, newname, flags):
        return syscall(ctypes.c_long(number), ctypes.c_int(olddirfd), ctypes.c_char_p(oldname),
                       ctypes.c_int(newdirfd), ctypes.c_char_p(newname), ctypes.c_uint(flags))
    return call


def exchange(dir_fd, name_a, name_b):
    """Swap two entries of one directory atomically; OSError on failure (nothing swapped)."""
    func = _renameat2()
    if func is None:
        raise OSError(errno.ENOSYS, 'renameat2 is not available on %s' % platform.machine())
    if func(dir_fd, name_a.encode(), dir_fd, name_b.encode(), RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _open_dir(path, dir_fd=None, follow=False):
    flags = _DIR_FLAGS if not follow else _DIR_FLAGS & ~os.O_NOFOLLOW
    return os.open(path, flags, dir_fd=dir_fd)


def open_parent(data_dir, keys_dir):
    """``(fd of the keys dir's parent, name of the keys dir in it)``, walked without following links.

    The data dir itself is given by the operator and may be a link; every component below it is
    the NEXUS account's and is opened with O_NOFOLLOW. A keys dir outside the data dir: its parent
    as given, the keys dir itself without following.
    """
    data_dir = os.path.abspath(data_dir)
    keys_dir = os.path.abspath(keys_dir)
    parent, name = os.path.split(keys_dir)
    if not name or name in ('.', '..'):
        raise RekeyFailed('keys_dir %s is not a directory name' % keys_dir)
    try:
        if os.path.commonpath([data_dir, keys_dir]) == data_dir and keys_dir != data_dir:
            fd = _open_dir(data_dir, follow=True)
            for part in os.path.relpath(parent, data_dir).split(os.sep):
                if part in ('', '.'):
                    continue
                try:
                    nxt = _open_dir(part, dir_fd=fd)
                finally:
                    os.close(fd)
                fd = nxt
        else:
            fd = _open_dir(parent, follow=True)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RekeyFailed('a component of %s is a symbolic link or not a directory; refusing to follow it'
                              % parent)
        raise RekeyFailed('cannot open %s: %s' % (parent, exc.strerror or exc))
    return fd, name


def _read_regular(name, dir_fd, limit):
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0), dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, 'not a regular file')
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b''.join(chunks), st
    finally:
        os.close(fd)


def read_keyring(keys_fd, keys_dir):
    """``({name: blob}, {name: stat})`` of the four key files; RekeyFailed on anything unexpected."""
    names = sorted(os.listdir(keys_fd))
    extra = [n for n in names if n not in _layout.KEY_FILES]
    if extra:
        raise RekeyFailed('%s holds entries other than the four key files (%s): move them away first; '
                          'nothing was changed' % (keys_dir, ', '.join(extra)))
    blobs, stats = {}, {}
    for name in _layout.KEY_FILES:
        path = os.path.join(keys_dir, name)
        try:
            text, st = _read_regular(name, keys_fd, _keyring.MAX_KEY_FILE_BYTES)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RekeyFailed('keyring file %s is a symbolic link; refusing to follow it' % path)
            raise RekeyFailed('keyring file %s cannot be read: %s' % (path, exc.strerror or exc))
        try:
            blobs[name] = _keyring.parse_key_text(path, text)
        except _keyring.KeyringError as exc:
            raise RekeyFailed('%s; nothing was changed' % exc)
        stats[name] = st
    return blobs, stats


def _lock(layout, check_mode):
    """Take nexus_restore's lock (private to the running user): no restore and rotation at once.

    None in check mode when no restore ever ran here (nothing to wait for, nothing created).
    """
    try:
        state_fd = _swap.open_state_dir(layout, create=not check_mode)
        if state_fd is None:
            return None
        try:
            return _swap.lock(layout, state_fd, create=not check_mode)
        finally:
            os.close(state_fd)
    except _swap.SwapError:
        raise RekeyFailed('a restore or another key rotation is running for %s; nothing was changed'
                          % layout.data_dir)
    except UnsafePath as exc:
        raise RekeyFailed('%s; nothing was changed' % exc)


def leftovers(parent_fd):
    """Names of staging dirs of interrupted runs in the keys dir's parent."""
    return sorted(n for n in os.listdir(parent_fd) if n.startswith(STAGING_PREFIX))


def _remove_dir(parent_fd, name, inner_fd=None):
    """Remove ``name`` (a staging dir of ours: plain files only) under ``parent_fd``, without following links."""
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        checkpoint('remove leftover')
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = inner_fd if inner_fd is not None else _open_dir(name, dir_fd=parent_fd)
    try:
        for entry in os.listdir(fd):
            checkpoint('remove old ' + entry)
            os.unlink(entry, dir_fd=fd)
    finally:
        if inner_fd is None:
            os.close(fd)
    checkpoint('rmdir staging')
    os.rmdir(name, dir_fd=parent_fd)


def remove_leftovers(parent_fd):
    """Remove what interrupted runs left (never the live keyring: ``keys`` is always complete)."""
    removed = []
    for name in leftovers(parent_fd):
        try:
            _remove_dir(parent_fd, name)
        except OSError as exc:
            raise RekeyFailed('cannot remove %s, left by an interrupted rotation (%s): remove it by hand; nothing '
                              'else was changed' % (name, exc.strerror or exc))
        removed.append(name)
    if removed:
        os.fsync(parent_fd)
    return removed


def _discard(parent_fd, name):
    """Best effort: drop a staging dir this run made (the next run removes what is left)."""
    try:
        _remove_dir(parent_fd, name)
        os.fsync(parent_fd)
    except OSError:
        pass  # not made yet, or not removable now


def _write_staging(parent_fd, name, keys_fd, texts, stats, aes_key):
    """Create the staging dir ``name`` with the new files, durable and proven."""
    keys_st = os.fstat(keys_fd)
    checkpoint('mkdir staging')
    os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
    stage_fd = _open_dir(name, dir_fd=parent_fd)
    try:
        os.fchmod(stage_fd, DIR_MODE)  # whatever the umask
        _own(stage_fd, keys_st)
        for key_name in _layout.KEY_FILES:
            checkpoint('write ' + key_name)
            fd = os.open(key_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | getattr(os, 'O_CLOEXEC', 0), FILE_MODE, dir_fd=stage_fd)
            try:
                os.fchmod(fd, FILE_MODE)
                _own(fd, stats[key_name])
                data = texts[key_name]
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
        checkpoint('fsync staging')
        os.fsync(stage_fd)
        os.fsync(parent_fd)
        for key_name in _layout.KEY_FILES:  # what is on disk decrypts, before it replaces anything
            text, dummy = _read_regular(key_name, stage_fd, _keyring.MAX_KEY_FILE_BYTES)
            if _keyring.unseal(aes_key, _keyring.parse_key_text(key_name, text)) is None:
                raise RekeyFailed('the new %s did not read back correctly; nothing was changed' % key_name)
    finally:
        os.close(stage_fd)


def _own(fd, like):
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (like.st_uid, like.st_gid):
        os.fchown(fd, like.st_uid, like.st_gid)


def _same_entry(parent_fd, name, fd):
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _exchange(parent_fd, keys_name, staging):
    """Swap the staging dir in; OSError only when nothing was swapped."""
    checkpoint('exchange')
    exchange(parent_fd, keys_name, staging)


def _remove_old(parent_fd, staging, keys_fd):
    """Make the swap durable, then remove the old files (now under the staging name)."""
    checkpoint('fsync parent')
    os.fsync(parent_fd)
    _remove_dir(parent_fd, staging, inner_fd=keys_fd)
    checkpoint('fsync parent after removal')
    os.fsync(parent_fd)


def rotate(layout, key_password, new_key_password, force=False, check_mode=False):
    """Re-wrap the keyring of ``layout`` (a ``_layout.Layout``). Returns the result dict; RekeyFailed."""
    if platform.system() != 'Linux':
        raise RekeyFailed('key rotation needs Linux (renameat2 RENAME_EXCHANGE); nothing was changed')
    if not new_key_password:
        raise RekeyFailed('new_key_password must not be empty (NEXUS would use its public default)')
    if '\n' in new_key_password or '\r' in new_key_password or '\0' in new_key_password:
        raise RekeyFailed('new_key_password must be one line (it goes into an environment file)')
    result = {'changed': False, 'keys_dir': layout.keys_dir, 'holders': [], 'overridden': [], 'removed': [],
              'warnings': []}
    lock_fd = _lock(layout, check_mode)
    try:
        if os.path.lexists(layout.journal_path):
            raise RekeyFailed('an interrupted restore was found (%s): run nexus_restore again to finish it first; '
                              'nothing was changed' % layout.journal_path)
        found = _liveness.scan(layout.db_path, layout.keys_dir)
        result['holders'] = found['holders']
        result['warnings'].extend(_liveness.notes(found))
        if found['in_use']:
            what = _liveness.describe(found)
            if not force:
                raise RekeyFailed('refusing to rotate the keyring password: %s; stop the server first (or set '
                                  'force=true if you know better); nothing was changed' % what,
                                  holders=found['holders'])
            result['overridden'].append(what)
            result['warnings'].append('force=true: rotating although ' + what)
        parent_fd, keys_name = open_parent(layout.data_dir, layout.keys_dir)
        try:
            _rotate_in(parent_fd, keys_name, layout.keys_dir, key_password, new_key_password, check_mode, result)
        finally:
            os.close(parent_fd)
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    return result


def _rotate_in(parent_fd, keys_name, keys_dir, key_password, new_key_password, check_mode, result):
    try:
        keys_fd = _open_dir(keys_name, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RekeyFailed('keys_dir %s is a symbolic link or not a directory; refusing to follow it' % keys_dir)
        raise RekeyFailed('cannot open keys_dir %s: %s' % (keys_dir, exc.strerror or exc))
    try:
        blobs, stats = read_keyring(keys_fd, keys_dir)
        try:
            plaintexts = _keyring.open_keyring(blobs, key_password, keys_dir)
            if plaintexts is None:
                if _keyring.open_keyring(blobs, new_key_password, keys_dir) is None:
                    raise RekeyFailed('key_password does not unlock the keyring in %s (nor does new_key_password); '
                                      'nothing was changed' % keys_dir)
                result['state'] = 'already'
            elif (key_password or _keyring.DEFAULT_KEY_PASSWORD) == new_key_password:
                result['state'] = 'already'
            else:
                result['state'] = 'rotated'
        except _keyring.KeyringError as exc:
            raise RekeyFailed('%s; nothing was changed' % exc)
        # ``keys`` holds a complete keyring (old or new); a staging dir beside it is never needed.
        stale = leftovers(parent_fd)
        if stale and check_mode:
            result['warnings'].append('leftovers of an interrupted rotation would be removed: %s' % ', '.join(stale))
        elif stale:
            result['removed'] = remove_leftovers(parent_fd)
            result['changed'] = True
        if result['state'] == 'already':
            return
        result['changed'] = True
        if check_mode:
            return
        _replace(parent_fd, keys_name, keys_fd, keys_dir, plaintexts, stats, new_key_password, result)
    finally:
        os.close(keys_fd)


def _replace(parent_fd, keys_name, keys_fd, keys_dir, plaintexts, stats, new_key_password, result):
    aes_key, texts = _keyring.seal_keyring(plaintexts, new_key_password)
    staging = STAGING_PREFIX + os.urandom(4).hex()
    try:
        _write_staging(parent_fd, staging, keys_fd, texts, stats, aes_key)
        if not _same_entry(parent_fd, keys_name, keys_fd):
            raise RekeyFailed('%s was replaced while the new key files were written; nothing was changed'
                              % keys_dir)
        _exchange(parent_fd, keys_name, staging)  # raises only when nothing was swapped
    except (RekeyFailed, OSError) as exc:
        _discard(parent_fd, staging)
        if isinstance(exc, RekeyFailed):
            raise
        if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise RekeyFailed('the filesystem of %s cannot swap two directories atomically (renameat2 '
                              'RENAME_EXCHANGE: %s); nothing was changed' % (keys_dir, exc.strerror or exc))
        raise RekeyFailed('cannot write or swap in the new key files (%s); nothing was changed'
                          % (exc.strerror or exc))
    try:
        _remove_old(parent_fd, staging, keys_fd)
    except OSError as exc:
        result['warnings'].append('rotated, but the old key files in %s could not be removed (%s); the next '
                                  'run removes them' % (os.path.join(os.path.dirname(keys_dir), staging), exc))
