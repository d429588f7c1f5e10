# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a NEXUS backup into a data directory: prove everything first, then swap (``_swap``).

Flow: take the restore lock (a private file in the root-only state dir beside the data dir) →
finish or undo an interrupted earlier restore (journal) → refuse links among the live files →
stage and validate the backup in a private dir on the data dir's filesystem (``_verify``), reached
through its directory fd → if the data dir already holds exactly the backup's files, stop
(idempotent) → otherwise swap with rollback. A missing data dir is created 0700 (disaster recovery
onto a fresh host); a missing parent of it is an error.

Nothing under the data dir (which the NEXUS service account writes) is reached through a link:
see ``_swap`` and docs/security.md.
Private to this collection.
"""

from __future__ import annotations

import binascii
import datetime
import errno
import grp
import os
import pwd
import stat
import tempfile
import time

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _staged, _swap, _verify
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import (
    UnsafePath, check_private, fd_path, fsync_path, lstat_at, make_private_dir, open_file_at, remove_tree,
    remove_tree_at, sha256_fd,
)

STAGING_PREFIX = _swap.STAGING_PREFIX
# Journal temp files of versions up to 0.2 (they wrote the journal into the data dir).
JOURNAL_TEMP_PREFIX = '.' + _layout.LEGACY_RESTORE_JOURNAL_NAME + '.'
PRE_RESTORE_PREFIX = _swap.PRE_RESTORE_PREFIX
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


def _entry_facts(dir_fd, name, shown):
    """``{'size', 'sha256'}`` of a regular file, read through an O_NOFOLLOW fd; ``{'kind'}`` for anything else."""
    st = lstat_at(dir_fd, name)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        return {'kind': 'symbolic link, not followed'}
    if not stat.S_ISREG(st.st_mode):
        return {'kind': 'not a regular file, not read'}
    if st.st_nlink != 1:
        return {'kind': 'hard-linked file, not read'}
    try:
        fd, st = open_file_at(dir_fd, name, shown)
    except UnsafePath:
        return {'kind': 'symbolic link, not followed'}
    try:
        return {'size': st.st_size, 'sha256': sha256_fd(fd)}
    finally:
        os.close(fd)


def live_facts(layout):
    """``{name: {'size', 'sha256'}}`` of the live database, its stale companions and key files.

    Links are reported as such (``{'kind'}``), never followed: the data dir is the service account's.
    """
    facts = {}
    try:
        with _swap.opened_dir(layout, os.path.dirname(layout.db_path)) as dfd:
            for name, path in [(_layout.DB_NAME, layout.db_path)] + layout.stale_paths():
                found = _entry_facts(dfd, os.path.basename(path), path)
                if found:
                    facts[name] = found
    except FileNotFoundError:
        pass
    try:
        with _swap.opened_dir(layout, layout.keys_dir) as kfd:
            for name in sorted(os.listdir(kfd)):
                found = _entry_facts(kfd, name, os.path.join(layout.keys_dir, name))
                if found:
                    facts[_layout.KEYS_NAME + '/' + name] = found
    except FileNotFoundError:
        pass
    return facts


def facts_text(facts):
    lines = []
    for name in sorted(facts):
        if 'kind' in facts[name]:
            lines.append('%s (%s)\n' % (name, facts[name]['kind']))
        else:
            lines.append('%s size=%d sha256=%s\n' % (name, facts[name]['size'], facts[name]['sha256']))
    return ''.join(lines)


def _owner_mode_ok(st, mode, owner_ids):
    if stat.S_IMODE(st.st_mode) != mode:
        return False
    if owner_ids[0] != -1 and st.st_uid != owner_ids[0]:
        return False
    return owner_ids[1] == -1 or st.st_gid == owner_ids[1]


def _matches(layout, live_path, staged_path, mode, owner_ids):
    """Same type, mode, wanted owner and (for files) the same bytes: size first, hashes only then.

    The live side is reached without links (a link never matches).
    """
    try:
        with _swap.opened_dir(layout, os.path.dirname(live_path)) as dfd:
            name = os.path.basename(live_path)
            if staged_path is None:
                st = lstat_at(dfd, name)
                return st is not None and stat.S_ISDIR(st.st_mode) and _owner_mode_ok(st, mode, owner_ids)
            fd, st = open_file_at(dfd, name, live_path)
            try:
                return (_owner_mode_ok(st, mode, owner_ids) and st.st_size == os.path.getsize(staged_path)
                        and sha256_fd(fd) == _verify.sha256_file(staged_path))
            finally:
                os.close(fd)
    except (UnsafePath, OSError):
        return False


def in_place(layout, staged, owner_ids=NO_OWNER):
    """True when the data dir already holds exactly the staged files (and no stale WAL)."""
    try:
        if any(_swap.lexists(layout, path) for _name, path in layout.stale_paths()):
            return False
        if not _matches(layout, layout.db_path, staged.db_path, FILE_MODE, owner_ids):
            return False
        if not _matches(layout, layout.keys_dir, None, DIR_MODE, owner_ids):
            return False
        with _swap.opened_dir(layout, layout.keys_dir) as kfd:
            if sorted(os.listdir(kfd)) != sorted(os.listdir(staged.keys_dir)):
                return False
    except (UnsafePath, OSError):
        return False
    return all(_matches(layout, os.path.join(layout.keys_dir, name), os.path.join(staged.keys_dir, name),
                        FILE_MODE, owner_ids)
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


def _existing_ancestor(layout, path):
    while not _swap.is_dir(layout, path):
        path = os.path.dirname(path)
    return path


def _check_same_filesystem(layout, staging_parent):
    dev = os.stat(staging_parent).st_dev
    for what, path in (('db_path', layout.db_path), ('keys_dir', layout.keys_dir)):
        with _swap.opened_dir(layout, _existing_ancestor(layout, os.path.dirname(path))) as fd:
            if os.fstat(fd).st_dev != dev:
                raise RestoreFailed('%s (%s) is not on the same filesystem as data_dir (%s): the restore swaps '
                                    'files by rename and cannot be atomic across filesystems'
                                    % (what, path, layout.data_dir))


def remove_leftovers(layout, directories):
    """Remove what crashed runs left: the staging dirs they recorded, and old journal temp files (under the lock).

    A staging dir is removed only when the state dir names it and it is still a directory owned by
    this user; nothing is taken for a leftover by its name alone (the service account names the
    entries of its data dir). Journal temp files of versions up to 0.2 are removed when ours.
    """
    removed = []
    for path in _swap.recorded_staging(layout):
        try:
            with _swap.opened_dir(layout, os.path.dirname(path)) as pfd:
                st = lstat_at(pfd, os.path.basename(path))
                if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
                    remove_tree_at(pfd, os.path.basename(path), path)
                    os.fsync(pfd)
                    removed.append(path)
        except FileNotFoundError:
            pass
    _swap.record_staging(layout, [])
    for directory in directories:
        try:
            dfd = layout.open_dir(directory)
        except FileNotFoundError:
            continue
        try:
            for name in sorted(os.listdir(dfd)):
                if not (name.startswith(JOURNAL_TEMP_PREFIX) and name.endswith('.tmp')):
                    continue
                st = lstat_at(dfd, name)
                if st is not None and st.st_uid == os.geteuid() and stat.S_ISREG(st.st_mode):
                    os.unlink(name, dir_fd=dfd)
                    removed.append(os.path.join(directory, name))
        finally:
            os.close(dfd)
    return removed


def _staging_name():
    return STAGING_PREFIX + binascii.hexlify(os.urandom(6)).decode('ascii')


def _make_staging(layout, staging_parent, record):
    """Create a private staging dir in ``staging_parent``; with ``record``, name it in the state dir first."""
    name = _staging_name()
    path = os.path.join(staging_parent, name)
    if record:
        _swap.record_staging(layout, [path])
    with _swap.opened_dir(layout, staging_parent) as pfd:
        os.mkdir(name, 0o700, dir_fd=pfd)
    return path


def _remove_journal_temp(layout, state_fd):
    try:
        os.unlink(layout.journal_name + '.tmp', dir_fd=state_fd)
    except FileNotFoundError:
        pass


def _kind(path, follow=True):
    """'dir', 'link', 'other' or None (missing); RestoreFailed when it cannot even be looked at."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise RestoreFailed('cannot access %s: %s' % (path, exc.strerror or exc))
    if stat.S_ISLNK(st.st_mode):
        return 'link'
    return 'dir' if stat.S_ISDIR(st.st_mode) else 'other'


def _staging_parent(layout):
    if layout.data_dir == layout.parent:
        raise RestoreFailed('data_dir must not be the root directory')
    kind = _kind(layout.data_dir, follow=False)
    if kind == 'dir':
        return layout.data_dir
    if kind == 'link':
        raise RestoreFailed('data_dir %s is a symbolic link: give the directory itself (nothing under the data '
                            'directory is reached through a link); nothing was changed' % layout.data_dir)
    if kind == 'other':
        raise RestoreFailed('data_dir %s exists but is not a directory' % layout.data_dir)
    parent = os.path.dirname(layout.data_dir)
    if _kind(parent) != 'dir':
        raise RestoreFailed('data_dir %s does not exist, nor does its parent %s: create the parent first '
                            '(only the data dir itself is created)' % (layout.data_dir, parent))
    return parent


def _take_lock(layout, check_mode):
    """``(state dir fd, lock fd)``; both None in check mode when no restore ever ran here."""
    try:
        state_fd = _swap.open_state_dir(layout, create=not check_mode)
    except UnsafePath as exc:
        raise RestoreFailed('%s; nothing was changed' % exc)
    except OSError as exc:
        raise RestoreFailed('cannot create the restore state directory %s: %s; nothing was changed'
                            % (layout.state_dir, exc.strerror or exc))
    if state_fd is None:
        return None, None
    try:
        return state_fd, _swap.lock(layout, state_fd, create=not check_mode)
    except (UnsafePath, _swap.SwapError) as exc:
        os.close(state_fd)
        raise RestoreFailed('%s; nothing was changed' % exc)
    except OSError as exc:
        os.close(state_fd)
        raise RestoreFailed('cannot take the restore lock in %s: %s; nothing was changed'
                            % (layout.state_dir, exc.strerror or exc))


def _open_staging(layout, staging):
    """fd of the staging dir just made, checked to be ours; a path reaching it through that fd."""
    try:
        fd = layout.open_dir(staging)
        check_private(fd, staging, 'the staging directory')
    except (UnsafePath, OSError) as exc:
        raise RestoreFailed('the staging directory %s changed under this run (%s); nothing was changed'
                            % (staging, exc))
    return fd, fd_path(fd) or staging


def _remove_staging(layout, staging, staging_fd):
    """Empty the staging dir through its fd, then remove its name if that is still the same directory."""
    for name in os.listdir(staging_fd):
        remove_tree_at(staging_fd, name, os.path.join(staging, name))
    try:
        with _swap.opened_dir(layout, os.path.dirname(staging)) as pfd:
            st = lstat_at(pfd, os.path.basename(staging))
            if st is not None and os.path.samestat(st, os.fstat(staging_fd)):
                os.rmdir(os.path.basename(staging), dir_fd=pfd)
    except (UnsafePath, OSError):
        pass


def _adopt_staged(layout, state_fd, src, depth, staging_parent, result):
    """``(staging path, manifest)`` of a matching staged copy moved into place, or ``(None, None)``."""
    try:
        name, found = _staged.take(layout, state_fd, src, depth)
    except (OSError, UnsafePath, _swap.SwapError) as exc:
        raise RestoreFailed('cannot look at the staged copies in %s: %s; nothing was changed'
                            % (layout.state_dir, getattr(exc, 'strerror', None) or exc))
    if name is None:
        if found:
            result['staged_copy_note'] = found
            result['warnings'].append(found)
        return None, None
    try:
        return _staged.adopt(layout, state_fd, name, staging_parent, _staging_name()), found
    except OSError as exc:
        note = ('the staged copy could not be moved next to the data dir (%s); the backup was validated again'
                % (exc.strerror or exc))
        result['staged_copy_note'] = note
        result['warnings'].append(note)
        try:
            _staged.remove_all(layout, state_fd)
            _swap.record_staging(layout, [])
        except (OSError, UnsafePath, _swap.SwapError) as rm_exc:
            raise RestoreFailed('cannot remove the staged copy in %s: %s; nothing was changed'
                                % (layout.state_dir, getattr(rm_exc, 'strerror', None) or rm_exc))
        return None, None


def stage_only(src, backup_password, layout, key_password=None, check_mode=False, max_total_bytes=None,
               depth='quick'):
    """Validate ``src`` into a staged copy in the state dir for a later ``restore`` (``_staged``).

    Nothing in the data dir is touched and no interrupted restore is recovered (that is the restore's
    job, with the server stopped). In check mode the backup is validated in a temporary private dir
    that is removed, and nothing is recorded. Returns the result dict or raises RestoreFailed.
    """
    if os.path.isdir(src):
        raise RestoreFailed('stage_only takes a backup file; %s is a directory; nothing was changed' % src)
    started = time.monotonic()
    result = {'changed': False, 'staged': False, 'staged_paths': [], 'recovered': None, 'pre_restore_path': None, 'removed': [],
              'warnings': [], 'staged_copy_used': False}
    staging_parent = _staging_parent(layout)
    state_fd, lock_fd = _take_lock(layout, check_mode)
    try:
        if check_mode or state_fd is None:
            work = make_private_dir(tempfile.gettempdir(), '.nexus-stage-check-')
            try:
                staged = _verify.stage_backup(src, backup_password, work, key_password=key_password,
                                              max_total_bytes=max_total_bytes, depth=depth)
            except _verify.BackupInvalid as exc:
                raise RestoreFailed('%s; nothing was changed' % exc)
            finally:
                remove_tree(work)
        else:
            if _swap.journal_exists(layout):
                result['warnings'].append('an interrupted restore was found (%s); the restore finishes or undoes '
                                          'it first' % layout.journal_path)
            try:
                staged, manifest = _staged.stage(layout, state_fd, src, backup_password, key_password=key_password,
                                                 depth=depth, max_total_bytes=max_total_bytes)
            except _verify.BackupInvalid as exc:
                raise RestoreFailed('%s; nothing was changed' % exc)
            except (IOError, OSError, UnsafePath) as exc:
                raise RestoreFailed('cannot stage the backup in %s: %s; nothing was changed'
                                    % (layout.state_dir, getattr(exc, 'strerror', None) or exc))
            result['staged'] = True
            result['staged_paths'] = _staged.paths(layout, manifest)
            if os.stat(staging_parent).st_dev != os.fstat(state_fd).st_dev:
                # The restore moves the copy by rename: from another filesystem it could not.
                _staged.remove_all(layout, state_fd)
                result['staged'] = False
                result['staged_paths'] = []
                result['warnings'].append('the restore state directory %s is not on the filesystem of %s: the '
                                          'restore validates the backup again' % (layout.state_dir, staging_parent))
    finally:
        for fd in (lock_fd, state_fd):
            if fd is not None:
                os.close(fd)
    result.update({'members': staged.members, 'secrets': staged.secrets, 'integrity': staged.integrity,
                   'integrity_check': depth, 'keyring_verified': staged.keyring_verified,
                   'timings': {'validate': round(time.monotonic() - started, 3), 'swap': 0.0}})
    return result


def restore(src, backup_password, layout, key_password=None, keep_pre_restore=True, owner_ids=NO_OWNER,
            check_mode=False, want_diff=False, now=None, max_total_bytes=None, depth='quick', use_staged=True):
    """Run the whole restore; return the result dict or raise RestoreFailed/_swap.RollbackFailed.

    With ``use_staged``, a staged copy of ``src`` that ``stage_only`` recorded and that still matches
    is swapped in instead of decrypting the backup again (``_staged``); any staged copy is removed.
    """
    started = time.monotonic()
    staging_parent = _staging_parent(layout)
    result = {'changed': False, 'recovered': None, 'pre_restore_path': None, 'removed': [], 'warnings': [],
              'staged_copy_used': False}
    # One restore at a time per parent of data_dir: the lock lives in the root-only state dir there,
    # so a data dir that a run is about to create is covered too.
    state_fd, lock_fd = _take_lock(layout, check_mode)
    try:
        try:
            if check_mode:
                _swap.check_legacy_journal(layout)
                if _swap.journal_exists(layout):
                    result['warnings'].append('an interrupted restore was found (%s); a real run finishes or '
                                              'undoes it first' % layout.journal_path)
            else:
                result['recovered'] = _swap.recover(layout)
        except (_swap.SwapError, UnsafePath) as exc:
            raise RestoreFailed(str(exc))
        if not check_mode:
            if result['recovered']:
                result['warnings'].append('an interrupted earlier restore was found and %s first'
                                          % result['recovered'].replace('_', ' '))
                # Rolling back removes a data dir the interrupted run had created: stage beside it again.
                staging_parent = _staging_parent(layout)
            try:
                # A crashed run staged in the data dir, or in its parent if the data dir did not exist yet.
                remove_leftovers(layout, sorted(set([staging_parent, layout.parent])))
                _remove_journal_temp(layout, state_fd)
            except (UnsafePath, OSError, _swap.SwapError) as exc:
                raise RestoreFailed('cannot remove what a crashed restore left behind: %s' % exc)
        try:
            _swap.check_live(layout)
            _check_same_filesystem(layout, staging_parent)
        except UnsafePath as exc:
            raise RestoreFailed('%s; nothing was changed' % exc)
        staging, adopted = None, None
        if state_fd is not None and not check_mode and not os.path.isdir(src):
            if use_staged:
                staging, adopted = _adopt_staged(layout, state_fd, src, depth, staging_parent, result)
            else:
                try:
                    _staged.remove_all(layout, state_fd)
                except (OSError, UnsafePath) as exc:
                    raise RestoreFailed('cannot remove the staged copy in %s: %s; nothing was changed'
                                        % (layout.state_dir, getattr(exc, 'strerror', None) or exc))
        result['staged_copy_used'] = adopted is not None
        try:
            if staging is None:
                staging = _make_staging(layout, staging_parent, record=state_fd is not None and not check_mode)
        except (OSError, UnsafePath) as exc:
            raise RestoreFailed('cannot create a private staging directory in %s: %s'
                                % (staging_parent, getattr(exc, 'strerror', None) or exc))
        staging_fd, work = None, staging
        keep_staging = False
        try:
            staging_fd, work = _open_staging(layout, staging)
            out = _stage_and_swap(src, backup_password, layout, staging, work, key_password, keep_pre_restore,
                                  owner_ids, check_mode, want_diff, now, max_total_bytes, depth, adopted, started)
            result['warnings'].extend(out.pop('warnings', []))
            result.update(out)
        except _swap.RollbackFailed:
            keep_staging = True  # the journal still needs the staged files to finish the rollback
            raise
        finally:
            if staging_fd is not None:
                if not keep_staging:
                    _remove_staging(layout, staging, staging_fd)
                os.close(staging_fd)
            elif not keep_staging:
                _remove_staging_by_name(layout, staging)
            if not keep_staging and not check_mode:
                try:
                    _swap.record_staging(layout, [])
                except (OSError, UnsafePath):
                    pass  # a record of a staging dir that is gone: the next run forgets it
    finally:
        for fd in (lock_fd, state_fd):
            if fd is not None:
                os.close(fd)
    return result


def _remove_staging_by_name(layout, staging):
    try:
        with _swap.opened_dir(layout, os.path.dirname(staging)) as pfd:
            st = lstat_at(pfd, os.path.basename(staging))
            if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
                remove_tree_at(pfd, os.path.basename(staging), staging)
    except (UnsafePath, OSError):
        pass


def _from_manifest(work, manifest, key_password):
    """The StagedBackup of an adopted staged copy: its facts from the manifest, the keyring checked now."""
    staged = _verify.StagedBackup(work, manifest['members'])
    staged.secrets = manifest['secrets']
    staged.integrity = 'ok'
    if key_password is not None:
        _verify.check_keyring(staged, key_password)
    return staged


def _stage_and_swap(src, backup_password, layout, staging, work, key_password, keep_pre_restore, owner_ids,
                    check_mode, want_diff, now, max_total_bytes, depth, adopted=None, started=None):
    """Stage into ``work`` (the staging dir, reached through its fd), then swap; ``staging`` is its name.

    ``adopted``: the manifest of a staged copy already moved into ``staging`` (nothing to decrypt).
    """
    started = time.monotonic() if started is None else started
    try:
        if adopted is not None:
            staged = _from_manifest(work, adopted, key_password)
            depth = adopted['depth']
        elif os.path.isdir(src):
            staged = _verify.stage_working_dir(src, work, key_password=key_password, depth=depth)
        else:
            staged = _verify.stage_backup(src, backup_password, work, key_password=key_password,
                                          max_total_bytes=max_total_bytes, depth=depth)
        prepare_staged(staged, owner_ids)
    except _verify.BackupInvalid as exc:
        raise RestoreFailed('%s; nothing was changed' % exc)
    except (IOError, OSError) as exc:
        raise RestoreFailed('cannot stage the backup in %s: %s; nothing was changed'
                            % (staging, str(exc).replace(work, staging)))
    out = {
        'members': staged.members,
        'secrets': staged.secrets,
        'integrity': staged.integrity,
        'integrity_check': depth,
        'keyring_verified': staged.keyring_verified,
    }
    validated = time.monotonic()
    out['timings'] = {'validate': round(validated - started, 3), 'swap': 0.0}
    try:
        if want_diff:
            out['diff'] = {'before_header': layout.data_dir, 'before': facts_text(live_facts(layout)),
                           'after_header': src, 'after': facts_text(staged.facts())}
        if os.path.isdir(layout.data_dir) and in_place(layout, staged, owner_ids):
            out['changed'] = False
            return out
        journal = _swap.plan(layout, os.path.join(staging, _swap.TREE_NAME), staging,
                             pre_restore_dir(layout.data_dir, now), keep_pre_restore)
    except UnsafePath as exc:
        raise RestoreFailed('%s; nothing was changed' % exc)
    out['changed'] = True
    out['removed'] = [item['name'] for item in journal['items'] if item['existed'] and not item['staged']]
    if check_mode:
        return out
    try:
        done = _swap.swap_in(layout, journal, owner_ids)
    except _swap.SwapError as exc:
        raise RestoreFailed(str(exc))
    out['timings']['swap'] = round(time.monotonic() - validated, 3)
    if done.get('cleanup_error'):
        out['warnings'] = [done['cleanup_error']]
    if journal['keep_pre_restore']:
        out['pre_restore_path'] = journal['pre_restore']
    return out
