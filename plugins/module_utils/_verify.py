# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decrypt, unpack and prove a backup inside a private staging directory.

One code path for ``nexus_restore`` (which then swaps the staged files in) and
``nexus_backup_info`` (which throws them away). Order matters: the envelope is decrypted and
unpacked (strictly) in one stream into the 0700 staging dir, and nothing there is used until the
GCM tag at the end of the stream has verified; only then is it checked: ``nexus.db`` and the
complete keyring present, SQLite ``integrity_check``, NEXUS's tables, and - given ``key_password`` -
the keyring unlocks with it.

A NEXUS working directory (such as a pre-restore copy) can be staged the same way
(``_workdir_source``) and goes through the same checks.

A backup must carry the complete keyring: a database restored without its keys cannot be read,
and the server replaces a missing or partial keyring with new keys (docs/nexus-behaviour.md §1).
Private to this collection.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat

from urllib.parse import quote

from ansible_collections.nexus.secrets.plugins.module_utils import (
    _archive, _envelope, _keyring, _sqlite, _workdir_source,
)
from ansible_collections.nexus.secrets.plugins.module_utils._iothreads import read_ahead
from ansible_collections.nexus.secrets.plugins.module_utils._layout import DB_NAME, KEY_FILES, KEYS_NAME

TREE_NAME = 'tree'
HASH_CHUNK = 1024 * 1024

# Tables and the columns our checks and the server depend on (docs/nexus-behaviour.md §3).
REQUIRED_SCHEMA = {
    'secrets': ('id', 'path', 'value', 'version', 'deleted_at'),
    'secret_versions': ('secret_id', 'version', 'value'),
    'audit_logs': ('id',),
}


class BackupInvalid(Exception):
    """The backup cannot be restored; the message says why, for the user."""


class KeyringMismatch(BackupInvalid):
    """The backup is sound but ``key_password`` does not unlock its keyring."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def file_facts(path):
    """``{'size', 'sha256'}`` of one file (never its content)."""
    return {'size': os.path.getsize(path), 'sha256': sha256_file(path)}


def keyring_files(keys_dir):
    """Names of the regular files in a keyring directory, sorted; [] when it does not exist."""
    if not os.path.isdir(keys_dir):
        return []
    return sorted(name for name in os.listdir(keys_dir)
                  if stat.S_ISREG(os.lstat(os.path.join(keys_dir, name)).st_mode))


class StagedBackup(object):
    """A decrypted, unpacked and validated backup in ``<staging>/tree``."""

    def __init__(self, staging_dir, members):
        self.staging_dir = staging_dir
        self.root = os.path.join(staging_dir, TREE_NAME)
        self.db_path = os.path.join(self.root, DB_NAME)
        self.keys_dir = os.path.join(self.root, KEYS_NAME)
        self.members = members
        self.secrets = None
        self.integrity = None
        self.keyring_verified = False

    def key_names(self):
        return keyring_files(self.keys_dir)

    def facts(self):
        """``{relative name: {'size', 'sha256'}}`` for nexus.db and each key file."""
        facts = {DB_NAME: file_facts(self.db_path)}
        for name in self.key_names():
            facts[KEYS_NAME + '/' + name] = file_facts(os.path.join(self.keys_dir, name))
        return facts


def _ro_connect(db_path):
    # immutable: reading must never create -wal/-shm files beside the staged database.
    return sqlite3.connect('file:%s?mode=ro&immutable=1' % quote(os.path.abspath(db_path)), uri=True)


def check_schema(db_path):
    """Raise BackupInvalid unless the database holds NEXUS's tables and columns, and nothing else.

    Schema objects NEXUS never creates (views, triggers, virtual tables, expression or partial
    indexes, unknown tables) are refused before any SQL evaluates them (``_sqlite.check_schema``).
    """
    try:
        tables = set(_sqlite.check_schema(db_path))
    except _sqlite.SchemaError as exc:
        raise BackupInvalid('nexus.db in the backup is not a NEXUS database: %s' % exc.detail)
    except _sqlite.DatabaseTimeout as exc:
        raise BackupInvalid('nexus.db in the backup: %s' % exc)
    except sqlite3.DatabaseError as exc:
        raise BackupInvalid('nexus.db in the backup is not a readable SQLite database: %s' % exc)
    if not tables:
        raise BackupInvalid('nexus.db in the backup holds no tables at all (a nexusctl backup taken '
                            'while the server ran misses the WAL); it cannot be restored')
    conn = _ro_connect(db_path)
    try:
        deadline = _sqlite.guard(conn, _sqlite.deadline_for(db_path))
        for table, columns in sorted(REQUIRED_SCHEMA.items()):
            if table not in tables:
                raise BackupInvalid('nexus.db in the backup is not a NEXUS database: table %r is missing' % table)
            rows = _sqlite.run_bounded(conn, deadline, 'PRAGMA table_info(%s)' % table, 'reading the schema',
                                       db_path)
            have = set(row[1] for row in rows)
            missing = [c for c in columns if c not in have]
            if missing:
                raise BackupInvalid('nexus.db in the backup is not a NEXUS database: table %r lacks %s'
                                    % (table, ', '.join(missing)))
    except _sqlite.DatabaseTimeout as exc:
        raise BackupInvalid('nexus.db in the backup: %s' % exc)
    except sqlite3.DatabaseError as exc:
        raise BackupInvalid('nexus.db in the backup is not a readable SQLite database: %s' % exc)
    finally:
        conn.close()


def _drain(reader):
    while reader.read(_envelope.CHUNK_SIZE):
        pass


def _unpack(src, password, tree, max_total_bytes, observe=None):
    """Decrypt and unpack in one stream; the tag is verified before this returns.

    ``observe`` sees every chunk of the backup file as it is read (see _iothreads.read_ahead)."""
    try:
        fh = open(src, 'rb')
    except (IOError, OSError) as exc:
        raise BackupInvalid('cannot read the backup %s: %s' % (src, exc.strerror or exc))
    with fh, read_ahead(fh, observe=observe) as ahead:
        reader = None
        try:
            reader = _envelope.EnvelopeReader(ahead, password)
            return _archive.extract_archive(reader, tree, max_total_bytes=max_total_bytes)
        except _envelope.EnvelopeError as exc:
            raise BackupInvalid('cannot decrypt the backup %s: %s' % (src, exc))
        except _archive.ArchiveError as exc:
            # A wrong password also yields garbage that is no gzip/tar: only the tag tells the two apart.
            try:
                _drain(reader)
            except _envelope.EnvelopeError as tag_exc:
                raise BackupInvalid('cannot decrypt the backup %s: %s' % (src, tag_exc))
            raise BackupInvalid('the backup %s decrypted, but its archive is unusable: %s' % (src, exc))


def _check_source(src):
    try:
        st = os.stat(src)
    except OSError as exc:
        raise BackupInvalid('cannot read the backup %s: %s' % (src, exc.strerror or exc))
    if not stat.S_ISREG(st.st_mode):
        raise BackupInvalid('the backup %s is not a regular file' % src)
    minimum = _envelope.HEADER_LEN + _envelope.TAG_LEN
    if st.st_size < minimum:
        raise BackupInvalid('the backup %s is only %d bytes: too small to be an encrypted NEXUS backup '
                            '(at least %d); empty or truncated?' % (src, st.st_size, minimum))


def _check_members(staged):
    if not os.path.isfile(staged.db_path) or os.path.islink(staged.db_path):
        raise BackupInvalid('the backup holds no nexus.db: nothing to restore')
    names = staged.key_names()
    missing = [name for name in KEY_FILES if name not in names]
    if missing:
        raise BackupInvalid('the backup holds no complete keyring (data/keys lacks %s): its secrets could '
                            'not be decrypted, and NEXUS would replace a partial keyring with new keys'
                            % ', '.join(missing))


def stage_backup(src, backup_password, staging_dir, key_password=None, max_total_bytes=None, depth='full',
                 observe=None):
    """Decrypt ``src`` into ``staging_dir`` (an empty private dir), unpack and validate it.

    ``observe`` is called with each chunk of ``src`` as it is read, in order, on a reader thread.

    Returns a StagedBackup; raises BackupInvalid (KeyringMismatch for a key password that does not
    unlock the keyring). The caller owns ``staging_dir`` and removes it.
    """
    _check_source(src)
    tree = os.path.join(staging_dir, TREE_NAME)
    os.mkdir(tree, 0o700)
    # Unauthenticated plaintext lands only in the private staging dir, and nothing looks at it
    # before _unpack returns, i.e. before the GCM tag verified.
    members = [{'name': m['name'], 'size': m['size'], 'type': m['type'], 'mode': '%04o' % m['mode']}
               for m in _unpack(src, backup_password, tree, max_total_bytes, observe)]
    return _validate(StagedBackup(staging_dir, members), key_password, depth)


def stage_working_dir(src_dir, staging_dir, key_password=None, depth='full'):
    """Like stage_backup, for a NEXUS working directory (a pre-restore copy): copied, WAL folded in."""
    tree = os.path.join(staging_dir, TREE_NAME)
    os.mkdir(tree, 0o700)
    try:
        members = _workdir_source.copy_working_dir(src_dir, tree)
    except _workdir_source.SourceError as exc:
        raise BackupInvalid(str(exc))
    return _validate(StagedBackup(staging_dir, members), key_password, depth)


def _validate(staged, key_password, depth):
    _check_members(staged)
    # The schema first: integrity_check would evaluate a hostile index expression or CHECK.
    check_schema(staged.db_path)
    try:
        problem = _sqlite.integrity_check(staged.db_path, depth)
    except _sqlite.DatabaseTimeout as exc:
        raise BackupInvalid('nexus.db in the backup: %s' % exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem:
        raise BackupInvalid('nexus.db in the backup fails PRAGMA %s: %s' % (_sqlite.CHECKS[depth], problem))
    staged.integrity = 'ok'
    staged.integrity_check = depth
    try:
        staged.secrets = _sqlite.count_live_secrets(staged.db_path)
    except sqlite3.DatabaseError as exc:
        raise BackupInvalid('nexus.db in the backup cannot be read: %s' % exc)
    if key_password is not None:
        check_keyring(staged, key_password)
    return staged


def check_keyring(staged, key_password):
    """Raise KeyringMismatch unless the staged keyring unlocks with ``key_password``."""
    try:
        unlocked = _keyring.keyring_unlocks(staged.keys_dir, key_password)
    except _keyring.KeyringError as exc:
        raise BackupInvalid('the keyring in the backup is unusable: %s' % exc)
    if not unlocked:
        raise KeyringMismatch('key_password does not unlock the keyring in the backup: NEXUS started with '
                              'it would replace the restored keys with new ones, losing every secret')
    staged.keyring_verified = True
