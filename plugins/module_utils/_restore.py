# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a NEXUS backup into a data directory: prove everything first, then swap (``_swap``).

Flow: finish or undo an interrupted earlier restore (journal) → stage and validate the backup in a
private dir on the data dir's filesystem (``_verify``) → if the data dir already holds exactly the
backup's files, stop (idempotent) → otherwise swap with rollback. A missing data dir is created
0700 (disaster recovery onto a fresh host); a missing parent of it is an error.
Private to this collection.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import grp
import os
import pwd
import stat

from ansible_collections.nexus.secrets.plugins.module_utils import _swap, _verify
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import fsync_path, make_private_dir, remove_tree

STAGING_PREFIX = '.nexus-restore-'
JOURNAL_TEMP_PREFIX = '.' + _swap.JOURNAL_NAME + '.'
PRE_RESTORE_PREFIX = 'pre-restore-'
FILE_MODE = 0o600
DIR_MODE = 0o700
NO_OWNER = (-1, -1)


class RestoreFailed(Exception):
    """A user-facing reason; the data dir is as it was (unless the message says otherwise)."""


def resolve_owner(owner=None, group=None):
    """``(uid, gid)`` for names or numeric ids; -1 for 'leave as the restoring user makes it'."""
    uid = gid = -1
    if owner not in (None, ''):
        try:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise RestoreFailed('owner %r does not exist on this host' % owner)
    if group not in (None, ''):
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise RestoreFailed('group %r does not exist on this host' % group)
    return uid, gid


def pre_restore_dir(data_dir, now=None):
    """``<data_dir>/pre-restore-YYYY-MM-DD-HHMMSS`` (local time, like nexusctl names), made unique."""
    stamp = (now or datetime.datetime.now()).strftime('%Y-%m-%d-%H%M%S')
    path = os.path.join(data_dir, PRE_RESTORE_PREFIX + stamp)
    candidate, n = path, 1
    while os.path.lexists(candidate):
        candidate = '%s-%d' % (path, n)
        n += 1
    return candidate


def live_facts(layout):
    """``{name: {'size', 'sha256'}}`` of the live database, its stale companions and key files."""
    facts = {}
    for name, path in [(_swap.DB_NAME, layout.db_path)] + layout.stale_paths():
        if os.path.isfile(path):
            facts[name] = _verify.file_facts(path)
    for name in _verify.keyring_files(layout.keys_dir):
        facts[_swap.KEYS_NAME + '/' + name] = _verify.file_facts(os.path.join(layout.keys_dir, name))
    return facts


def facts_text(facts):
    return ''.join('%s size=%d sha256=%s\n' % (name, facts[name]['size'], facts[name]['sha256'])
                   for name in sorted(facts))


def _matches(live_path, staged_path, mode, owner_ids):
    """Same type, mode, wanted owner and (for files) the same bytes: size first, hashes only then."""
    try:
        st = os.lstat(live_path)
    except OSError:
        return False
    if stat.S_IMODE(st.st_mode) != mode:
        return False
    if owner_ids[0] != -1 and st.st_uid != owner_ids[0]:
        return False
    if owner_ids[1] != -1 and st.st_gid != owner_ids[1]:
        return False
    if staged_path is None:
        return stat.S_ISDIR(st.st_mode)
    return (stat.S_ISREG(st.st_mode) and st.st_size == os.path.getsize(staged_path)
            and _verify.sha256_file(live_path) == _verify.sha256_file(staged_path))


def in_place(layout, staged, owner_ids=NO_OWNER):
    """True when the data dir already holds exactly the staged files (and no stale WAL)."""
    if any(os.path.lexists(path) for _name, path in layout.stale_paths()):
        return False
    if not _matches(layout.db_path, staged.db_path, FILE_MODE, owner_ids):
        return False
    if not _matches(layout.keys_dir, None, DIR_MODE, owner_ids):
        return False
    if sorted(os.listdir(layout.keys_dir)) != sorted(os.listdir(staged.keys_dir)):
        return False
    return all(_matches(os.path.join(layout.keys_dir, name), os.path.join(staged.keys_dir, name), FILE_MODE,
                        owner_ids)
               for name in staged.key_names())


def prepare_staged(staged, owner_ids):
    """Give the staged files their final modes and owners, and make them durable before the swap."""
    paths = [(staged.db_path, FILE_MODE)]
    paths += [(os.path.join(staged.keys_dir, n), FILE_MODE) for n in staged.key_names()]
    paths += [(staged.keys_dir, DIR_MODE), (os.path.dirname(staged.keys_dir), DIR_MODE)]
    for path, mode in paths:
        os.chmod(path, mode)
        if owner_ids != NO_OWNER:
            os.chown(path, owner_ids[0], owner_ids[1])
        fsync_path(path)
    fsync_path(staged.root)


def _existing_ancestor(path):
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def _check_same_filesystem(layout, staging_parent):
    dev = os.stat(staging_parent).st_dev
    for what, path in (('db_path', layout.db_path), ('keys_dir', layout.keys_dir)):
        if os.stat(_existing_ancestor(os.path.dirname(path))).st_dev != dev:
            raise RestoreFailed('%s (%s) is not on the same filesystem as data_dir (%s): the restore swaps '
                                'files by rename and cannot be atomic across filesystems'
                                % (what, path, layout.data_dir))


def _lock(path):
    """An exclusive, non-blocking lock on a directory: one restore at a time under it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError):
        os.close(fd)
        raise RestoreFailed('another restore is running in %s' % path)
    return fd


def remove_leftovers(directory):
    """Remove staging dirs and journal temp files of crashed runs (ours by name; only under the lock)."""
    removed = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.islink(path):
            continue
        if name.startswith(STAGING_PREFIX) and os.path.isdir(path):
            remove_tree(path)
            removed.append(path)
        elif name.startswith(JOURNAL_TEMP_PREFIX) and name.endswith('.tmp') and os.path.isfile(path):
            os.unlink(path)
            removed.append(path)
    return removed


def _kind(path):
    """'dir', 'other' or None (missing); RestoreFailed when it cannot even be looked at."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise RestoreFailed('cannot access %s: %s' % (path, exc.strerror or exc))
    return 'dir' if stat.S_ISDIR(st.st_mode) else 'other'


def _staging_parent(layout):
    kind = _kind(layout.data_dir)
    if kind == 'dir':
        return layout.data_dir
    if kind == 'other':
        raise RestoreFailed('data_dir %s exists but is not a directory' % layout.data_dir)
    parent = os.path.dirname(layout.data_dir)
    if _kind(parent) != 'dir':
        raise RestoreFailed('data_dir %s does not exist, nor does its parent %s: create the parent first '
                            '(only the data dir itself is created)' % (layout.data_dir, parent))
    return parent


def restore(src, backup_password, layout, key_password=None, keep_pre_restore=True, owner_ids=NO_OWNER,
            check_mode=False, want_diff=False, now=None, max_total_bytes=None):
    """Run the whole restore; return the result dict or raise RestoreFailed/_swap.RollbackFailed."""
    staging_parent = _staging_parent(layout)
    result = {'changed': False, 'recovered': None, 'pre_restore_path': None, 'removed': [], 'warnings': []}
    # The parent, not the data dir: a data dir that a run is about to create cannot be locked yet.
    lock_fd = _lock(os.path.dirname(layout.data_dir))
    try:
        if check_mode:
            if os.path.lexists(layout.journal_path):
                result['warnings'].append('an interrupted restore was found (%s); a real run finishes or undoes '
                                          'it first' % layout.journal_path)
        else:
            try:
                result['recovered'] = _swap.recover(layout)
            except _swap.SwapError as exc:
                raise RestoreFailed(str(exc))
            if result['recovered']:
                result['warnings'].append('an interrupted earlier restore was found and %s first'
                                          % result['recovered'].replace('_', ' '))
                # Rolling back removes a data dir the interrupted run had created: stage beside it again.
                staging_parent = _staging_parent(layout)
            # A crashed run staged in the data dir, or in its parent if the data dir did not exist yet.
            for directory in sorted(set([staging_parent, os.path.dirname(layout.data_dir)])):
                remove_leftovers(directory)
        _check_same_filesystem(layout, staging_parent)
        try:
            staging = make_private_dir(staging_parent, STAGING_PREFIX)
        except OSError as exc:
            raise RestoreFailed('cannot create a private staging directory in %s: %s'
                                % (staging_parent, exc.strerror or exc))
        keep_staging = False
        try:
            out = _stage_and_swap(src, backup_password, layout, staging, key_password, keep_pre_restore,
                                  owner_ids, check_mode, want_diff, now, max_total_bytes)
            result['warnings'].extend(out.pop('warnings', []))
            result.update(out)
        except _swap.RollbackFailed:
            keep_staging = True  # the journal still needs the staged files to finish the rollback
            raise
        finally:
            if not keep_staging:
                remove_tree(staging)
    finally:
        os.close(lock_fd)
    return result


def _stage_and_swap(src, backup_password, layout, staging, key_password, keep_pre_restore, owner_ids,
                    check_mode, want_diff, now, max_total_bytes):
    try:
        if os.path.isdir(src):
            staged = _verify.stage_working_dir(src, staging, key_password=key_password)
        else:
            staged = _verify.stage_backup(src, backup_password, staging, key_password=key_password,
                                          max_total_bytes=max_total_bytes)
        prepare_staged(staged, owner_ids)
    except _verify.BackupInvalid as exc:
        raise RestoreFailed('%s; nothing was changed' % exc)
    except (IOError, OSError) as exc:
        raise RestoreFailed('cannot stage the backup in %s: %s; nothing was changed' % (staging, exc))
    out = {
        'members': staged.members,
        'secrets': staged.secrets,
        'integrity': staged.integrity,
        'keyring_verified': staged.keyring_verified,
    }
    if want_diff:
        out['diff'] = {'before_header': layout.data_dir, 'before': facts_text(live_facts(layout)),
                       'after_header': src, 'after': facts_text(staged.facts())}
    if os.path.isdir(layout.data_dir) and in_place(layout, staged, owner_ids):
        out['changed'] = False
        return out
    journal = _swap.plan(layout, staged.root, staging, pre_restore_dir(layout.data_dir, now), keep_pre_restore)
    out['changed'] = True
    out['removed'] = [item['name'] for item in journal['items'] if item['existed'] and not item['staged']]
    if check_mode:
        return out
    try:
        done = _swap.swap_in(layout, journal, owner_ids)
    except _swap.SwapError as exc:
        raise RestoreFailed(str(exc))
    if done.get('cleanup_error'):
        out['warnings'] = [done['cleanup_error']]
    if journal['keep_pre_restore']:
        out['pre_restore_path'] = journal['pre_restore']
    return out
