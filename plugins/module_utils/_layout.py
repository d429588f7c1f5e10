# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NEXUS's names on disk, in one place: the working directory, the keyring, backups and their sidecars.

A NEXUS working directory (docs/nexus-behaviour.md §1, §5) holds ``nexus.db``, beside it SQLite's
``-wal``, ``-shm`` and ``-journal``, and the keyring ``data/keys`` with its four key files; a backup
archive holds the same names. nexusctl names a backup ``nexus-backup-YYYY-MM-DD-HHMMSS.tar.gz.enc``
(local time); beside each backup this collection keeps a ``sha256sum`` line, ``<backup>.sha256``.
``Layout`` says where one server keeps these files (the modules' ``data_dir``/``db_path``/``keys_dir``)
and where the restore keeps its own state beside them.

Every other file takes these names from here. Private to this collection.
"""

from __future__ import annotations

import datetime
import os
import re
import stat

from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import (
    O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW, check_private, open_beneath,
)

# --- a NEXUS working directory -------------------------------------------------------------------

DB_NAME = 'nexus.db'
WAL_SUFFIX = '-wal'
SHM_SUFFIX = '-shm'
ROLLBACK_JOURNAL_SUFFIX = '-journal'
# Files SQLite replays or pairs with nexus.db: a leftover from one database must never meet another.
DB_COMPANION_SUFFIXES = (WAL_SUFFIX, SHM_SUFFIX, ROLLBACK_JOURNAL_SUFFIX)
# The keyring directory, relative to the working directory; also its member name in a backup.
KEYS_NAME = 'data/keys'
KEYS_PARTS = tuple(KEYS_NAME.split('/'))  # ('data', 'keys'): the directories, outer first
KEY_FILES = ('master.key', 'signing.key', 'verify.key', 'age.key')
# A key file's member name in a backup archive (nexusctl archives every *.key in data/keys).
KEY_MEMBER_RE = re.compile(r'^data/keys/[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}\.key\Z')

# --- backup files and their sidecars -------------------------------------------------------------

BACKUP_NAME_RE = re.compile(r'^nexus-backup-(\d{4})-(\d{2})-(\d{2})-(\d{2})(\d{2})(\d{2})\.tar\.gz\.enc$')
BACKUP_NAME_FORMAT = 'nexus-backup-%Y-%m-%d-%H%M%S.tar.gz.enc'
BACKUP_NAME_EXAMPLE = 'nexus-backup-YYYY-MM-DD-HHMMSS.tar.gz.enc'
BACKUP_GLOB = 'nexus-backup-*.tar.gz.enc'
SIDECAR_SUFFIX = '.sha256'
SIDECAR_MAX_BYTES = 4096  # one sha256sum line: 64 hex digits, two separators, a file name
_SIDECAR_NAME_RE = re.compile(r'^ [ *](.+)$')

# --- the restore's own state, beside the data dir (written by root only, see _swap) ---------------

RESTORE_STATE_DIR_NAME = '.nexus-secrets-restore'
RESTORE_JOURNAL_SUFFIX = '.journal'
# Where versions up to 0.2 wrote the journal: inside the data dir, which the service account writes.
LEGACY_RESTORE_JOURNAL_NAME = '.nexus-restore.journal'


class SidecarError(Exception):
    """Something other than a sidecar file is where a sidecar belongs (a link, a FIFO, a large file)."""


def parse_backup_time(name):
    """The local time in a nexusctl backup file name, or None when it is not one."""
    match = BACKUP_NAME_RE.match(os.path.basename(name))
    if not match:
        return None
    try:
        return datetime.datetime(*(int(part) for part in match.groups()))
    except ValueError:  # e.g. month 13: matches the pattern, names no time
        return None


def backup_name(when=None):
    """nexusctl's file name for a backup taken at ``when`` (local time, default now)."""
    return (when or datetime.datetime.now()).strftime(BACKUP_NAME_FORMAT)


def sidecar_line(sha256, name):
    """One ``sha256sum`` line (text mode: two spaces) for the file ``name``."""
    return '%s  %s\n' % (sha256, name)


def parse_sidecar(raw):
    """``(sha256, file name or None)`` from a sidecar's first line, or None when it names no SHA-256.

    The SHA-256 is the line's first word (64 hex digits, returned lowercase); the file name is
    what follows ``sha256sum``'s separators (a space, then a space or ``*``), None without them.
    """
    if isinstance(raw, bytes):
        raw = raw.decode('utf-8', 'replace')
    line = raw.split('\n', 1)[0].strip()
    words = line.split(None, 1)
    digest = words[0] if words else ''
    if len(digest) != 64 or any(c not in '0123456789abcdefABCDEF' for c in digest):
        return None
    match = _SIDECAR_NAME_RE.match(line[64:])
    return digest.lower(), (match.group(1) if match else None)


def read_sidecar(path):
    """The bytes of the sidecar file ``path`` (bounded), or None when there is none.

    No link, FIFO or device is followed or waited on; anything but a small regular file raises
    SidecarError.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SidecarError('%s is not a readable sidecar file: %s' % (path, exc.strerror or exc))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > SIDECAR_MAX_BYTES:
            raise SidecarError('%s is not a regular sidecar file' % path)
        return os.read(fd, SIDECAR_MAX_BYTES + 1)
    except OSError as exc:
        raise SidecarError('%s cannot be read: %s' % (path, exc.strerror or exc))
    finally:
        os.close(fd)


# --- where one server keeps its files ------------------------------------------------------------

def _within(path, base):
    if base == os.sep:
        return path.startswith(os.sep)
    return path == base or path.startswith(base + os.sep)


class Layout(object):
    """Where the live files are. ``db_path``/``keys_dir`` default to nexusctl's places in ``data_dir``.

    Paths below the data dir's parent are opened link-free (``open_dir``); the parent itself, and
    a ``db_path``/``keys_dir`` parent outside it, are taken as the module's options give them.
    """

    def __init__(self, data_dir, db_path=None, keys_dir=None):
        self.data_dir = os.path.abspath(data_dir)
        self.parent = os.path.dirname(self.data_dir)
        self.db_path = os.path.abspath(db_path or os.path.join(self.data_dir, DB_NAME))
        self.keys_dir = os.path.abspath(keys_dir or os.path.join(self.data_dir, *KEYS_PARTS))
        self.state_dir = os.path.join(self.parent, RESTORE_STATE_DIR_NAME)
        self.journal_name = os.path.basename(self.data_dir) + RESTORE_JOURNAL_SUFFIX
        self.journal_path = os.path.join(self.state_dir, self.journal_name)
        self.legacy_journal_path = os.path.join(self.data_dir, LEGACY_RESTORE_JOURNAL_NAME)
        # Directories made by this collection: entered only while still private to this user.
        self.private_roots = set([self.state_dir])

    def live_items(self):
        """``(name, live path, staged name or None)``; ``name`` is also its place in a pre-restore copy."""
        items = [(DB_NAME, self.db_path, DB_NAME)]
        items += [(DB_NAME + s, self.db_path + s, None) for s in DB_COMPANION_SUFFIXES]
        items.append((KEYS_NAME, self.keys_dir, KEYS_NAME))
        return items

    def stale_paths(self):
        return [(DB_NAME + s, self.db_path + s) for s in DB_COMPANION_SUFFIXES]

    def _check(self, shown, fd):
        if shown in self.private_roots:
            check_private(fd, shown)

    def open_dir(self, path):
        """A new fd of the directory ``path``; FileNotFoundError when missing, UnsafePath for a link."""
        path = os.path.abspath(path)
        if _within(path, self.parent) and path != self.parent:
            anchor, rel = self.parent, os.path.relpath(path, self.parent)
        else:
            anchor, rel = path, ''
        anchor_fd = os.open(anchor, os.O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try:
            return open_beneath(anchor_fd, rel, anchor, self._check)
        finally:
            os.close(anchor_fd)

    def creatable_dirs(self):
        """Every directory a swap may create: the data dir and the parents of db and keys below it."""
        found = set([self.data_dir])
        for path in (os.path.dirname(self.db_path), os.path.dirname(self.keys_dir)):
            while path not in found and path != os.path.dirname(path) and not _within(self.parent, path):
                found.add(path)
                path = os.path.dirname(path)
        return found
