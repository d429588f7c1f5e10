# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""List backup files and verify them without restoring ("test restores regularly", automated).

Verification is the restore's own validation (``_verify.stage_backup``) into a private temporary
staging directory that is removed afterwards; nothing else is written.
Private to this collection.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import tempfile

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _verify
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import make_private_dir, remove_tree

STAGING_PREFIX = '.nexus-verify-'


class InfoError(Exception):
    """A user-facing reason why the backups cannot be listed."""


def backup_files(path, pattern=_layout.BACKUP_GLOB):
    """The files to list or check at ``path``: the file itself, or the regular files in it matching
    ``pattern`` (any name the pattern allows, not only nexusctl's timestamped ones; never a sidecar)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise InfoError('%s is neither a backup file nor a directory' % path)
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise InfoError('cannot list %s: %s' % (path, exc.strerror or exc))
    return [os.path.join(path, name) for name in names
            if fnmatch.fnmatchcase(name, pattern) and not name.endswith(_layout.SIDECAR_SUFFIX)
            and os.path.isfile(os.path.join(path, name)) and not os.path.islink(os.path.join(path, name))]


def sidecar_state(path, checksum=True):
    """'ok', 'mismatch' or 'missing' for the ``sha256sum``-format sidecar ``<path>.sha256``;
    'unchecked' for a well-formed one when ``checksum`` is false (the file is not read)."""
    try:
        raw = _layout.read_sidecar(path + _layout.SIDECAR_SUFFIX)
    except _layout.SidecarError:  # a link, a FIFO, a directory, a file too large to be one line
        return 'mismatch'
    if raw is None:
        return 'missing'
    entry = _layout.parse_sidecar(raw)
    if entry is None or entry[1] is None or os.path.basename(entry[1]) != os.path.basename(path):
        return 'mismatch'
    if not checksum:
        return 'unchecked'
    return 'ok' if entry[0] == _verify.sha256_file(path) else 'mismatch'


def describe(path, checksum=True):
    st = os.stat(path)
    name = os.path.basename(path)
    when = _layout.parse_backup_time(name)
    return {
        'path': os.path.abspath(path),
        'name': name,
        'time': when.isoformat() if when else None,
        'mtime': datetime.datetime.fromtimestamp(st.st_mtime).replace(microsecond=0).isoformat(),
        'size': st.st_size,
        'sidecar': sidecar_state(path, checksum),
    }


def verify(path, backup_password, key_password=None, tmp_dir=None, depth='full'):
    """Validate one backup as a restore would; a bad backup is a result (``valid: false``), not an error.

    Only a staging directory that cannot be created fails the whole listing; anything one file
    provokes (even an unexpected exception) is that file's ``error``.
    """
    parent = tmp_dir or tempfile.gettempdir()
    try:
        staging = make_private_dir(parent, STAGING_PREFIX)
    except OSError as exc:
        raise InfoError('cannot create a private staging directory in %s: %s' % (parent, exc.strerror or exc))
    try:
        staged = _verify.stage_backup(path, backup_password, staging, key_password=key_password, depth=depth)
        return {'valid': True, 'error': None, 'members': staged.members, 'secrets': staged.secrets,
                'integrity': staged.integrity, 'integrity_check': depth, 'keyring_verified': staged.keyring_verified}
    except _verify.BackupInvalid as exc:
        return _invalid(str(exc))
    except (IOError, OSError) as exc:
        # Per file: one backup too large for the staging filesystem must not hide the others.
        return _invalid('cannot verify %s: staging in %s failed: %s' % (path, parent, exc.strerror or exc))
    except Exception as exc:  # pylint: disable=broad-except
        # Whatever one hostile file provokes, the listing and the other files' checks go on.
        return _invalid('cannot verify %s: unexpected %s while reading it; treat it as invalid'
                        % (path, type(exc).__name__))
    finally:
        remove_tree(staging)


def _invalid(error):
    return {'valid': False, 'error': error, 'members': [], 'secrets': None, 'integrity': None,
            'integrity_check': None, 'keyring_verified': False}


def _sort_key(entry):
    return entry['time'] or entry['mtime']


def parse_before(text):
    """``text`` (ISO 8601 date or date and time; local time unless it names an offset) as the local,
    naive ``datetime`` the backup times are compared with; InfoError when it is not such a time."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace('Z', '+00:00'))
    except ValueError:
        raise InfoError('before must be an ISO 8601 time such as 2025-12-04T00:15:00 (got %r)' % text)
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when


def inventory(path, pattern=_layout.BACKUP_GLOB, backup_password=None, key_password=None, check=False,
              tmp_dir=None, before=None, depth='full', checksum=True):
    """``(backups newest first, latest)``; ``latest`` is the newest valid one when checking, else the newest.

    ``before`` (a naive local ``datetime``) keeps only the backups taken at or before it.
    ``checksum`` false: sidecars are not compared with their files (no file is read whole).
    """
    backups = sorted((describe(p, checksum) for p in backup_files(path, pattern)), key=_sort_key, reverse=True)
    if before is not None:
        backups = [entry for entry in backups if _sort_key(entry) <= before.isoformat()]
    if check:
        for entry in backups:
            entry.update(verify(entry['path'], backup_password, key_password, tmp_dir, depth))
        valid = [entry for entry in backups if entry['valid']]
        return backups, (valid[0] if valid else None)
    return backups, (backups[0] if backups else None)
