# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create one nexusctl-compatible encrypted backup, in one streaming pass, atomically.

``SQLite snapshot (the live file under a read lock, or an online-backup copy in a private 0700
dir) -> tar -> gzip -> AES-GCM -> temp file (0600) -> fsync -> rename to the final name ->
sha256sum sidecar``. Nothing appears under the final name unless it is complete. Private to this
collection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import errno
import fcntl
import hashlib
import os
import stat

from ansible_collections.nexus.secrets.plugins.module_utils import _fsutil
from ansible_collections.nexus.secrets.plugins.module_utils._archive import ArchiveError, write_archive
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeError, EnvelopeWriter
from ansible_collections.nexus.secrets.plugins.module_utils._gzip_stream import COMPRESS_LEVEL, STORE_LEVEL
from ansible_collections.nexus.secrets.plugins.module_utils._iothreads import threaded_writes
from ansible_collections.nexus.secrets.plugins.module_utils._layout import SIDECAR_SUFFIX, backup_name, sidecar_line
from ansible_collections.nexus.secrets.plugins.module_utils._sqlite import DatabaseError, open_snapshot

PRIVATE_PREFIX = '.nexus-backup-'
WRITE_BUFFER = 1024 * 1024
# A default (timestamped) name that is taken moves on by one second at a time, this often at most.
NAME_ATTEMPTS = 600
# The compression choices: deflate every block that shrinks (the smallest file), or store them all
# (about twice the file for a database that is mostly audit log, a backup about four times faster and
# a quicker restore where deflate with the standard library's zlib is what bounds them).
COMPRESSION_LEVELS = {'deflate': COMPRESS_LEVEL, 'store': STORE_LEVEL}
RENAME_NOREPLACE = 1  # linux/fs.h
# Filesystems without hard links answer link() with one of these; RENAME_NOREPLACE is tried then.
_NO_LINK_ERRNOS = frozenset(getattr(errno, name) for name in ('EPERM', 'EOPNOTSUPP', 'ENOTSUP', 'EMLINK', 'ENOSYS')
                            if hasattr(errno, name))


class BackupError(Exception):
    """A user-facing reason why no backup was made."""


class BackupBusy(BackupError):
    """Another backup holds the destination's lock; that run is making the backup."""


def candidate_names(name=None, now=None):
    """The names a backup may take, in order: an explicit ``name`` alone, else nexusctl's timestamped
    name for ``now`` and then the following seconds (names retention still recognises), so a second
    backup in the same second gets the next free second instead of replacing the first."""
    if name:
        return [validate_name(name)]
    first = (now or datetime.datetime.now()).replace(microsecond=0)
    return [backup_name(first + datetime.timedelta(seconds=step)) for step in range(NAME_ATTEMPTS)]


def name_is_free(dest_dir, name):
    """Neither the backup nor its sidecar exists (a link counts as existing)."""
    path = os.path.join(dest_dir, name)
    return not (os.path.lexists(path) or os.path.lexists(path + SIDECAR_SUFFIX))


def predict_path(dest_dir, name=None, now=None):
    """The path ``create_backup`` would write now (check mode), or BackupError when an explicit name is taken."""
    names = candidate_names(name, now)
    for candidate in names:
        if not os.path.isdir(dest_dir) or name_is_free(dest_dir, candidate):
            return os.path.join(dest_dir, candidate)
    raise _taken(dest_dir, names)


def _taken(dest_dir, names):
    if len(names) == 1:
        return BackupError('%s already exists; a backup never replaces an existing file: choose another name '
                           'or remove it first' % os.path.join(dest_dir, names[0]))
    return BackupError('no free backup name in %s from %s to %s; a backup never replaces an existing file'
                       % (dest_dir, names[0], names[-1]))


_LIBC = []


def _renameat2_noreplace(src, dst):
    """rename(2) that fails with EEXIST instead of replacing ``dst`` (Linux renameat2 RENAME_NOREPLACE)."""
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True))
    func = getattr(_LIBC[0], 'renameat2', None)
    if func is None:
        raise OSError(errno.ENOSYS, 'renameat2 is not available')
    at_fdcwd = -100
    if func(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), RENAME_NOREPLACE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), dst)


def publish_noreplace(src, dst):
    """Give the complete file ``src`` the name ``dst`` atomically, never replacing an existing ``dst``.

    ``link()`` fails with EEXIST when ``dst`` exists; where the filesystem has no hard links,
    ``renameat2(RENAME_NOREPLACE)`` does the same. A filesystem with neither is refused: a backup
    is never allowed to replace a file. Raises FileExistsError when ``dst`` exists.
    """
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, 'File exists', dst)
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
        try:
            _renameat2_noreplace(src, dst)
        except OSError as exc2:
            if exc2.errno == errno.EEXIST:
                raise FileExistsError(errno.EEXIST, 'File exists', dst)
            if exc2.errno in (errno.EINVAL, errno.ENOSYS) or exc2.errno in _NO_LINK_ERRNOS:
                raise BackupError('the filesystem of %s supports neither hard links nor RENAME_NOREPLACE, so a '
                                  'backup could not be written without risking to replace a file'
                                  % os.path.dirname(dst))
            raise
        return
    os.unlink(src)


def validate_name(name):
    """A plain file name for the backup, or BackupError."""
    if not name or name in ('.', '..') or '/' in name or '\0' in name:
        raise BackupError('name must be a plain file name, got %r' % name)
    if name.startswith('.'):
        raise BackupError('name must not start with "." (reserved for temporary files): %r' % name)
    if name.endswith(SIDECAR_SUFFIX):
        raise BackupError('name must not end with %s (that is the checksum sidecar): %r' % (SIDECAR_SUFFIX, name))
    return name


def ensure_dest_dir(dest_dir):
    """Create ``dest_dir`` 0700 when absent (as nexusctl does); refuse a non-directory."""
    if os.path.isdir(dest_dir):
        return False
    if os.path.lexists(dest_dir):
        raise BackupError('dest %s exists and is not a directory' % dest_dir)
    try:
        os.makedirs(dest_dir, 0o700)
    except OSError as exc:
        raise BackupError('cannot create dest directory %s: %s' % (dest_dir, exc.strerror or exc))
    return True


def check_sources(db_path, keys_dir):
    """Fail early, with a clear message, when there is nothing to back up."""
    if not os.path.exists(db_path):
        raise BackupError('database %s does not exist (is data_dir or db_path right?)' % db_path)
    if not os.path.isfile(db_path):
        raise BackupError('database %s is not a regular file' % db_path)
    if keys_dir is not None and not os.path.isdir(keys_dir):
        raise BackupError('keyring directory %s does not exist: a backup without the keyring cannot be '
                          'decrypted after a restore (is data_dir or keys_dir right?)' % keys_dir)


def remove_stale_private_dirs(dest_dir):
    """Remove the private dirs that killed backups (SIGKILL, power loss) left in ``dest_dir``.

    Only call this holding ``dest_dir``'s lock (``_hold_dest``): then no backup is running.
    """
    removed = []
    for name in os.listdir(dest_dir):
        path = os.path.join(dest_dir, name)
        if name.startswith(PRIVATE_PREFIX) and os.path.isdir(path) and not os.path.islink(path):
            _fsutil.remove_tree(path)
            removed.append(path)
    return removed


def _hold_dest(dest_dir):
    """Lock ``dest_dir`` exclusively for the whole backup: the fd, or None where flock is unsupported.

    Overlapping backups into one directory (a slow run meeting the next scheduled one) would race
    on retention and double the load, so a second one fails at once. Holding the lock also proves
    no backup is running, so what killed ones left behind can go.
    """
    try:
        fd = os.open(dest_dir, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise BackupBusy('another backup into %s is already running; not starting a second one'
                             % dest_dir)
        return None
    remove_stale_private_dirs(dest_dir)
    return fd


def create_backup(db_path, keys_dir, dest_dir, password, name=None, mode=0o600, now=None, compression='deflate'):
    """Write ``<dest_dir>/<name>`` and its ``.sha256`` sidecar; return what was written.

    Returns ``{'path', 'size', 'sha256', 'members', 'secrets'}``. ``keys_dir`` None archives the
    database alone. Any failure (a full disk included) leaves neither a partial file under the
    final name nor temporary files, and raises BackupError; the temporary files of a backup that
    was killed are removed by the next one.

    An existing file is never replaced: an explicit ``name`` that exists fails before any work;
    the default timestamped name moves on to the next free second (``candidate_names``).
    ``now`` (default: the current local time) is the time the default name is made from.
    ``compression`` is a key of COMPRESSION_LEVELS; the file is ordinary gzip either way.
    Raises BackupBusy when another backup into ``dest_dir`` runs.
    """
    names = candidate_names(name, now)
    level = COMPRESSION_LEVELS[compression]
    check_sources(db_path, keys_dir)
    ensure_dest_dir(dest_dir)
    final_path = os.path.join(dest_dir, names[0])
    if len(names) == 1 and not name_is_free(dest_dir, names[0]):
        raise _taken(dest_dir, names)
    lock_fd = _hold_dest(dest_dir)
    try:
        try:
            private = _fsutil.make_private_dir(dest_dir, PRIVATE_PREFIX)
        except OSError as exc:
            raise BackupError('cannot write to dest %s: %s' % (dest_dir, exc.strerror or exc))
        try:
            return _create_in(private, db_path, keys_dir, dest_dir, names, password, mode, level)
        except (OSError, IOError) as exc:
            raise BackupError('backup to %s failed: %s' % (final_path, exc.strerror or exc))
        except (DatabaseError, EnvelopeError, ArchiveError) as exc:
            raise BackupError('backup to %s failed: %s' % (final_path, exc))
        finally:
            _fsutil.remove_tree(private)
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _create_in(private, db_path, keys_dir, dest_dir, names, password, mode, level):
    db_mode = stat.S_IMODE(os.stat(db_path).st_mode)
    temp_path = os.path.join(private, 'backup.tmp')
    sha256 = hashlib.sha256()
    with open_snapshot(db_path, private) as snapshot:
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb', WRITE_BUFFER) as raw:
            # Read + gzip + AES-GCM here; SHA-256 + writing in the worker: about equal halves.
            with threaded_writes(raw, observe=sha256.update, drop_cache=True) as out:
                envelope = EnvelopeWriter(out, password)
                members = write_archive(envelope, snapshot.path, keys_dir, db_mode=db_mode, db_size=snapshot.size,
                                        level=level)
                envelope.close()
            raw.flush()
            os.fsync(raw.fileno())
        secrets = snapshot.secrets
    os.chmod(temp_path, mode)
    digest = sha256.hexdigest()

    for name in names:
        final_path = os.path.join(dest_dir, name)
        if not name_is_free(dest_dir, name):
            continue
        sidecar_temp = os.path.join(private, 'sidecar.tmp')
        sidecar_fd = os.open(sidecar_temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(sidecar_fd, 'w') as fh:
            fh.write(sidecar_line(digest, name))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(sidecar_temp, mode)
        try:
            publish_noreplace(temp_path, final_path)
        except FileExistsError:
            continue  # taken since the check (another writer in a shared directory): the next name
        try:
            publish_noreplace(sidecar_temp, final_path + SIDECAR_SUFFIX)
        except FileExistsError:
            _unpublish(final_path, temp_path)  # an orphan sidecar took the name: the next name
            continue
        except BaseException:
            _unpublish(final_path, temp_path)
            raise
        break
    else:
        raise _taken(dest_dir, names)
    _fsutil.fsync_path(dest_dir)
    return {'path': final_path, 'size': out.size, 'sha256': digest, 'members': members, 'secrets': secrets}


def _unpublish(final_path, temp_path):
    """Take back our own just-published backup (a link to ``temp_path``, or ``temp_path`` renamed)."""
    if os.path.exists(temp_path):
        os.unlink(final_path)
    else:
        os.rename(final_path, temp_path)


def remove_backup(path):
    """Delete a backup and its sidecar; return the paths that were removed.

    The sidecar goes first: a run killed in between leaves a backup that the next retention prunes,
    never a sidecar that no rule matches any more.
    """
    removed = []
    for victim in (path + SIDECAR_SUFFIX, path):
        try:
            os.unlink(victim)
        except FileNotFoundError:
            continue
        removed.append(victim)
    return removed
