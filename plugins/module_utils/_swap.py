# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swap validated, staged files into a NEXUS data directory, crash-safely, with a journal.

``nexusctl backup restore`` overwrites files in place: a failure half-way leaves a mix of old and
new, and a stale ``nexus.db-wal`` is replayed over the restored database. Here every change is a
rename on one filesystem, announced first in a journal written atomically:

1. journal ``swapping`` (which live items existed, the names of the staging and pre-restore dirs);
2. each existing live item (``nexus.db``, its ``-wal``/``-shm``/``-journal``, the keys dir) is
   renamed into the pre-restore directory, which is itself a complete NEXUS working directory;
3. the staged ``nexus.db`` and keys dir are renamed into place;
4. journal ``committed``; staging (and, unless kept, the pre-restore copy) removed; journal removed.

A crash before ``committed`` is undone by ``recover()`` on the next run (every item goes back where
it was: the old state, complete); a crash after it is finished (the new state, complete). Both are
idempotent: each step checks what is on disk, so recovery itself may be interrupted and re-run.
A failure raised during the swap is rolled back at once the same way.

Trust boundary (docs/security.md). The modules run as root; the data dir belongs to the NEXUS
service account, which can write anything in it. So:

- the journal and the lock live in a root-only state directory beside the data dir
  (``<parent of data_dir>/.nexus-secrets-restore/``, 0700, owned by the running user, checked on
  every open); the journal is read only from there, only when it is a private regular file, and
  holds no path root acts on: ``_expand`` rebuilds every path from ``_layout.Layout`` (the module's
  options) plus two names that must match fixed patterns (``.nexus-restore-*`` staging,
  ``pre-restore-YYYY-MM-DD-HHMMSS`` copy), each a direct child of the data dir (staging: or of its
  parent). A journal in the data dir (where versions up to 0.2 kept it) is refused, never read;
- every path below the data dir's parent is reached one component at a time with ``O_NOFOLLOW``
  from the directory fd of its parent, and renames, mkdirs and removals take directory fds
  (``_fsutil``): a link where a directory is expected raises ``UnsafePath``;
- the staging and pre-restore dirs are only entered when they are still private to this user.
Private to this collection.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat

from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import (
    O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW, UnsafePath, check_private, lstat_at, open_dir_at, open_file_at,
    remove_tree_at, tree_files,
)
from ansible_collections.nexus.secrets.plugins.module_utils._layout import (
    DB_NAME, KEYS_NAME, RESTORE_STATE_DIR_NAME,
)

JOURNAL_FORMAT = 2
SWAPPING = 'swapping'
COMMITTED = 'committed'
LOCK_NAME = 'lock'
STAGING_SUFFIX = '.staging'
JOURNAL_MAX_BYTES = 64 * 1024
STAGING_PREFIX = '.nexus-restore-'
PRE_RESTORE_PREFIX = 'pre-restore-'
TREE_NAME = 'tree'
STAGING_NAME_RE = re.compile(r'\A\.nexus-restore-[A-Za-z0-9_]{1,64}\Z')
PRE_RESTORE_NAME_RE = re.compile(r'\Apre-restore-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{6}(-[0-9]{1,6})?\Z')


class SwapError(Exception):
    """The swap failed and was rolled back: the data dir holds its previous state."""


class RollbackFailed(Exception):
    """The swap failed and so did the rollback: the journal stays, the next run retries it."""


def checkpoint(label):
    """A named point before each change to the data dir (tests inject faults and crashes here)."""


@contextlib.contextmanager
def opened_dir(layout, path):
    fd = layout.open_dir(path)
    try:
        yield fd
    finally:
        os.close(fd)


def _lstat(layout, path):
    """lstat of ``path`` reached without links; None when it (or a parent) is missing."""
    try:
        with opened_dir(layout, os.path.dirname(path)) as fd:
            return lstat_at(fd, os.path.basename(path))
    except FileNotFoundError:
        return None


def lexists(layout, path):
    return _lstat(layout, path) is not None


def is_dir(layout, path):
    st = _lstat(layout, path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _rename(layout, src, dst, label):
    checkpoint(label)
    with opened_dir(layout, os.path.dirname(src)) as sfd, opened_dir(layout, os.path.dirname(dst)) as dfd:
        os.rename(os.path.basename(src), os.path.basename(dst), src_dir_fd=sfd, dst_dir_fd=dfd)
        os.fsync(sfd)
        if os.path.dirname(src) != os.path.dirname(dst):
            os.fsync(dfd)


def _mkdir(layout, path, owner_ids, label):
    checkpoint(label)
    with opened_dir(layout, os.path.dirname(path)) as pfd:
        name = os.path.basename(path)
        os.mkdir(name, 0o700, dir_fd=pfd)
        fd = open_dir_at(pfd, name, path)
        try:
            os.fchmod(fd, 0o700)  # whatever the umask
            if owner_ids != (-1, -1):
                os.fchown(fd, owner_ids[0], owner_ids[1])
        finally:
            os.close(fd)
        os.fsync(pfd)


def _identity(st):
    return [st.st_dev, st.st_ino]


def _check_ours(layout, path, identity=None):
    """A staging or pre-restore dir about to be removed must still be the private one made here.

    With ``identity`` (``[st_dev, st_ino]`` from the root-only journal) it must be that very
    directory: the service account can rename root-owned directories inside its data dir.
    """
    st = _lstat(layout, path)
    if st is not None and stat.S_ISDIR(st.st_mode):
        with opened_dir(layout, path) as fd:
            st = check_private(fd, path)
        if identity is not None and _identity(st) != list(identity):
            raise UnsafePath('%s is not the directory this restore made (it was replaced); left in place' % path)


def _remove_tree(layout, path, label):
    if lexists(layout, path):
        checkpoint(label)
        with opened_dir(layout, os.path.dirname(path)) as pfd:
            remove_tree_at(pfd, os.path.basename(path), path)
            os.fsync(pfd)


def _rmdir_if_empty(layout, path, label):
    if not is_dir(layout, path):
        return
    with opened_dir(layout, path) as fd:
        if os.listdir(fd):
            return
    checkpoint(label)
    with opened_dir(layout, os.path.dirname(path)) as pfd:
        os.rmdir(os.path.basename(path), dir_fd=pfd)
        os.fsync(pfd)


# --- the state dir: lock and journal, where only this user writes ---------------------------------

def open_state_dir(layout, create=True):
    """fd of ``<parent>/.nexus-secrets-restore`` (0700, ours, no link), made if missing and ``create``.

    None when it does not exist and ``create`` is false. UnsafePath when it is not private to us.
    """
    pfd = os.open(layout.parent, os.O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    try:
        if create:
            try:
                os.mkdir(RESTORE_STATE_DIR_NAME, 0o700, dir_fd=pfd)
                os.fsync(pfd)
            except FileExistsError:
                pass
        try:
            fd = open_dir_at(pfd, RESTORE_STATE_DIR_NAME, layout.state_dir)
        except FileNotFoundError:
            if create:
                raise
            return None
    finally:
        os.close(pfd)
    try:
        check_private(fd, layout.state_dir, 'the restore state directory')
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock(layout, state_fd, create=True):
    """Take the restore lock (``<state dir>/lock``, 0600, ours); return its fd, or None when missing and not ``create``.

    SwapError when another restore holds it; UnsafePath when the lock file is not ours.
    """
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK
    shown = os.path.join(layout.state_dir, LOCK_NAME)
    try:
        fd = os.open(LOCK_NAME, flags, 0o600, dir_fd=state_fd)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafePath('%s is a symbolic link; refusing to use it as the restore lock' % shown)
        raise
    try:
        st = check_private(fd, shown, 'the restore lock')
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath('the restore lock %s is not a regular file' % shown)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            raise SwapError('another restore is running for %s (it holds %s)' % (layout.data_dir, shown))
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_legacy_journal(layout):
    """Refuse a journal inside the data dir: the service account can write there, so it is never trusted."""
    if lexists(layout, layout.legacy_journal_path):
        raise SwapError('found %s: a restore journal inside the data directory, which the NEXUS service account '
                        'can write. This collection keeps its journal in %s and never trusts one in the data '
                        'directory (it may be forged); nothing was changed. Inspect it and remove it by hand'
                        % (layout.legacy_journal_path, layout.state_dir))


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _write_private(layout, name, data):
    """Write ``data`` atomically to ``name`` in the state dir: a 0600 temp file, fsync, rename, fsync."""
    tmp = name + '.tmp'
    sfd = open_state_dir(layout)
    try:
        try:
            os.unlink(tmp, dir_fd=sfd)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600, dir_fd=sfd)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=sfd, dst_dir_fd=sfd)
        os.fsync(sfd)
    finally:
        os.close(sfd)


def _read_private(layout, name, what):
    """Bytes of ``name`` in the state dir, or None; SwapError unless it is a private regular file of ours."""
    where = os.path.join(layout.state_dir, name)
    try:
        sfd = open_state_dir(layout, create=False)
    except (UnsafePath, OSError) as exc:
        raise SwapError('cannot use the restore state directory %s: %s; nothing was changed'
                        % (layout.state_dir, getattr(exc, 'strerror', None) or exc))
    if sfd is None:
        return None
    try:
        try:
            fd, st = open_file_at(sfd, name, where)
        except FileNotFoundError:
            return None
        try:
            if st.st_uid != os.geteuid() or st.st_mode & 0o022 or st.st_nlink != 1:
                raise UnsafePath('%s %s is not a private file of uid %d (owner uid %d, mode %04o, %d links)'
                                 % (what, where, os.geteuid(), st.st_uid, stat.S_IMODE(st.st_mode), st.st_nlink))
            if st.st_size > JOURNAL_MAX_BYTES:
                raise UnsafePath('%s %s is %d bytes, more than this collection ever writes' % (what, where, st.st_size))
            return os.read(fd, JOURNAL_MAX_BYTES + 1)
        finally:
            os.close(fd)
    except (UnsafePath, OSError) as exc:
        raise SwapError('cannot use %s: %s; nothing was changed; inspect it by hand'
                        % (what, getattr(exc, 'strerror', None) or exc))
    finally:
        os.close(sfd)


# For the staged-copy manifest (``_staged``), kept in the same state dir with the same guarantees.
write_private = _write_private
read_private = _read_private


def write_journal(layout, journal, label):
    checkpoint(label)
    _write_private(layout, layout.journal_name,
                   json.dumps(_stored(layout, journal), sort_keys=True, indent=1).encode('utf-8'))


def journal_exists(layout):
    return lexists(layout, layout.journal_path)


def read_journal(layout):
    """The (expanded) journal of an interrupted swap, or None; SwapError when it cannot be trusted or read."""
    where = layout.journal_path
    data = _read_private(layout, layout.journal_name, 'the restore journal')
    if data is None:
        return None
    try:
        raw = json.loads(data.decode('utf-8'))
    except ValueError as exc:
        raise SwapError('the restore journal %s is corrupt (%s); inspect the data dir by hand' % (where, exc))
    try:
        return _expand(layout, raw)
    except ValueError as exc:
        raise SwapError('the restore journal %s is not one this collection wrote for this data dir (%s); nothing '
                        'was changed; inspect it by hand' % (where, exc))


# --- staging dirs: named in the state dir before they are made ------------------------------------
#
# A crashed run leaves its staging dir behind, and the next run removes it. Which directories are
# such leftovers is read from the state dir, never guessed from names in the data dir: there the
# service account could give a root-owned directory (a pre-restore copy) a staging name.

def _staging_record_name(layout):
    return os.path.basename(layout.data_dir) + STAGING_SUFFIX


def recorded_staging(layout):
    """Paths of staging dirs that runs for this data dir announced and may not have removed."""
    data = _read_private(layout, _staging_record_name(layout), 'the staging record')
    if data is None:
        return []
    try:
        raw = json.loads(data.decode('utf-8'))
        if not isinstance(raw, list) or not all(
                isinstance(e, list) and len(e) == 2 and e[0] in ('data_dir', 'parent')
                and isinstance(e[1], str) and STAGING_NAME_RE.match(e[1]) for e in raw):
            raise ValueError('unexpected entries')
    except ValueError as exc:
        raise SwapError('the staging record %s is not one this collection wrote (%s); nothing was changed; '
                        'inspect it by hand' % (os.path.join(layout.state_dir, _staging_record_name(layout)), exc))
    return [os.path.join(layout.data_dir if where == 'data_dir' else layout.parent, name) for where, name in raw]


def record_staging(layout, paths):
    """Announce (or, with [], forget) the staging dirs of this data dir; each must be a valid staging path."""
    entries = []
    for path in paths:
        where = 'data_dir' if os.path.dirname(path) == layout.data_dir else 'parent'
        if os.path.dirname(path) not in (layout.data_dir, layout.parent) or \
                not STAGING_NAME_RE.match(os.path.basename(path)):
            raise ValueError('not a staging path: %s' % path)
        entries.append([where, os.path.basename(path)])
    name = _staging_record_name(layout)
    if not entries:
        sfd = open_state_dir(layout)
        try:
            os.unlink(name, dir_fd=sfd)
            os.fsync(sfd)
        except FileNotFoundError:
            pass
        finally:
            os.close(sfd)
        return
    _write_private(layout, name, json.dumps(entries).encode('utf-8'))


# --- journal contents: names only, every path rebuilt from the Layout ------------------------------

def _stored(layout, journal):
    staging = journal['staging']
    return {
        'format': JOURNAL_FORMAT,
        'state': journal['state'],
        'data_dir': layout.data_dir,
        'db_path': layout.db_path,
        'keys_dir': layout.keys_dir,
        'staging': os.path.basename(staging),
        'staging_in': 'data_dir' if os.path.dirname(staging) == layout.data_dir else 'parent',
        'pre_restore': os.path.basename(journal['pre_restore']),
        'keep_pre_restore': bool(journal['keep_pre_restore']),
        'created_dirs': list(journal['created_dirs']),
        'existed': dict((item['name'], bool(item['existed'])) for item in journal['items']),
        'staging_id': journal['staging_id'],
        'pre_restore_id': journal['pre_restore_id'],
    }


def _expand(layout, raw):
    """The working journal for ``layout`` from its stored form; ValueError for anything unexpected."""
    keys = set(['format', 'state', 'data_dir', 'db_path', 'keys_dir', 'staging', 'staging_in', 'pre_restore',
                'keep_pre_restore', 'created_dirs', 'existed', 'staging_id', 'pre_restore_id'])
    if not isinstance(raw, dict) or set(raw) != keys:
        raise ValueError('unexpected fields')
    if raw['format'] != JOURNAL_FORMAT or raw['state'] not in (SWAPPING, COMMITTED):
        raise ValueError('unknown format or state')
    for what in ('data_dir', 'db_path', 'keys_dir'):
        if raw[what] != getattr(layout, what):
            raise ValueError('it was written for %s=%r, this run has %r; rerun with the options of the interrupted '
                             'restore' % (what, raw[what], getattr(layout, what)))
    if not isinstance(raw['staging'], str) or not STAGING_NAME_RE.match(raw['staging']):
        raise ValueError('bad staging name')
    if raw['staging_in'] not in ('data_dir', 'parent'):
        raise ValueError('bad staging place')
    if not isinstance(raw['pre_restore'], str) or not PRE_RESTORE_NAME_RE.match(raw['pre_restore']):
        raise ValueError('bad pre-restore name')
    if not isinstance(raw['keep_pre_restore'], bool):
        raise ValueError('bad keep_pre_restore')
    for what in ('staging_id', 'pre_restore_id'):
        ident = raw[what]
        if not (ident is None and what == 'pre_restore_id') and not (
                isinstance(ident, list) and len(ident) == 2 and all(isinstance(i, int) for i in ident)):
            raise ValueError('bad %s' % what)
    created = raw['created_dirs']
    allowed = layout.creatable_dirs()
    if not isinstance(created, list) or not all(isinstance(p, str) and p in allowed for p in created):
        raise ValueError('created_dirs outside the layout')
    names = [name for name, _live, _staged in layout.live_items()]
    existed = raw['existed']
    if not isinstance(existed, dict) or sorted(existed) != sorted(names) or \
            not all(isinstance(v, bool) for v in existed.values()):
        raise ValueError('bad item list')
    staging = os.path.join(layout.data_dir if raw['staging_in'] == 'data_dir' else layout.parent, raw['staging'])
    pre_restore = os.path.join(layout.data_dir, raw['pre_restore'])
    layout.private_roots.update([staging, pre_restore])
    items = []
    for name, live, staged_name in layout.live_items():
        items.append({
            'name': name,
            'live': live,
            'existed': existed[name],
            'saved': os.path.join(pre_restore, name),
            'staged': os.path.join(staging, TREE_NAME, staged_name) if staged_name else None,
        })
    return {
        'format': JOURNAL_FORMAT,
        'state': raw['state'],
        'staging': staging,
        'pre_restore': pre_restore,
        'keep_pre_restore': raw['keep_pre_restore'],
        'created_dirs': list(created),
        'items': items,
        'staging_id': raw['staging_id'],
        'pre_restore_id': raw['pre_restore_id'],
    }


def check_live(layout):
    """UnsafePath when a live item, or a directory on the way to it, is a link or of the wrong kind."""
    for name, live, _staged in layout.live_items():
        st = _lstat(layout, live)
        if st is None:
            continue
        want_dir = name == KEYS_NAME
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath('%s is a symbolic link where a %s is expected; refusing to follow or move it'
                             % (live, 'directory' if want_dir else 'regular file'))
        if want_dir and not stat.S_ISDIR(st.st_mode):
            raise UnsafePath('%s is not a directory' % live)
        if not want_dir and not stat.S_ISREG(st.st_mode):
            raise UnsafePath('%s is not a regular file' % live)


def missing_dirs(layout):
    """Directories the swap must create (outermost first): data dir and the parents of db and keys."""
    wanted = []
    for path in (layout.data_dir, os.path.dirname(layout.db_path), os.path.dirname(layout.keys_dir)):
        chain = []
        while path not in wanted and path not in chain:
            st = _lstat(layout, path)
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafePath('%s is %s where a directory is expected'
                                     % (path, 'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'not a directory'))
                break
            chain.append(path)
            path = os.path.dirname(path)
        wanted.extend(reversed(chain))
    return wanted


def plan(layout, staged_root, staging_dir, pre_restore_dir, keep_pre_restore):
    """The journal for one swap: nothing on disk changes here. UnsafePath for a linked live item."""
    if staged_root != os.path.join(staging_dir, TREE_NAME):
        raise ValueError('the staged files must be in <staging>/%s' % TREE_NAME)
    if os.path.dirname(staging_dir) not in (layout.data_dir, layout.parent):
        raise ValueError('the staging dir must be in the data dir or its parent')
    if os.path.dirname(pre_restore_dir) != layout.data_dir:
        raise ValueError('the pre-restore dir must be in the data dir')
    check_live(layout)
    staging_st = _lstat(layout, staging_dir)
    if staging_st is None or not stat.S_ISDIR(staging_st.st_mode):
        raise ValueError('the staging dir %s does not exist' % staging_dir)
    existed = [lexists(layout, live) for _name, live, _staged in layout.live_items()]
    stored = {
        'format': JOURNAL_FORMAT, 'state': SWAPPING, 'data_dir': layout.data_dir, 'db_path': layout.db_path,
        'keys_dir': layout.keys_dir, 'staging': os.path.basename(staging_dir),
        'staging_in': 'data_dir' if os.path.dirname(staging_dir) == layout.data_dir else 'parent',
        'pre_restore': os.path.basename(pre_restore_dir),
        'keep_pre_restore': bool(keep_pre_restore and any(existed)),
        'created_dirs': missing_dirs(layout),
        'existed': dict((item[0], e) for item, e in zip(layout.live_items(), existed)),
        'staging_id': _identity(staging_st),
        'pre_restore_id': None,
    }
    return _expand(layout, stored)


def swap_in(layout, journal, owner_ids=(-1, -1)):
    """Run the swap described by ``plan()``. Raise SwapError after a complete rollback."""
    created = journal['created_dirs']
    try:
        if layout.data_dir in created:
            # A missing data dir comes first (a crash right after this leaves only an empty directory behind).
            _mkdir(layout, layout.data_dir, owner_ids, 'mkdir data_dir')
        write_journal(layout, journal, 'journal swapping')
    except Exception as exc:
        if layout.data_dir in created and not journal_exists(layout):
            _rmdir_if_empty(layout, layout.data_dir, 'undo mkdir data_dir')
        raise SwapError('cannot start the swap in %s (%s); nothing was changed' % (layout.data_dir, exc))
    try:
        for path in created:
            if path != layout.data_dir:
                _mkdir(layout, path, owner_ids, 'mkdir ' + path)
        if any(item['existed'] for item in journal['items']):
            _mkdir(layout, journal['pre_restore'], (-1, -1), 'mkdir pre_restore')
            _mkdir(layout, os.path.join(journal['pre_restore'], 'data'), (-1, -1), 'mkdir pre_restore/data')
        for item in journal['items']:
            if item['existed']:
                _rename(layout, item['live'], item['saved'], 'save ' + item['name'])
        for item in journal['items']:
            if item['staged']:
                _rename(layout, item['staged'], item['live'], 'install ' + item['name'])
        pre_st = _lstat(layout, journal['pre_restore'])
        journal = dict(journal, state=COMMITTED, pre_restore_id=_identity(pre_st) if pre_st else None)
        write_journal(layout, journal, 'journal committed')
    except Exception as exc:
        try:
            roll_back(layout, journal)
        except Exception as rb_exc:
            raise RollbackFailed('restore failed (%s) and so did the rollback (%s); the previous files are in '
                                 '%s and the journal %s; the next nexus_restore run finishes the rollback'
                                 % (exc, rb_exc, journal['pre_restore'], layout.journal_path))
        raise SwapError('restore failed while swapping files (%s); the previous state was put back' % exc)
    try:
        finish(layout, journal)
    except Exception as exc:
        # The new state is complete and committed; only clean-up is left, and the next run does it.
        journal['cleanup_error'] = 'restored, but clean-up failed (%s); the next run finishes it' % exc
    return journal


def _is_restored_copy(layout, item):
    """Whether what is live at ``item`` is the copy the swap installed (not the original)."""
    moved_out = item['existed'] and lexists(layout, item['saved'])
    return bool(item['staged']) and lexists(layout, item['live']) and (moved_out or not item['existed'])


def _makedirs(layout, path, label):
    """Create ``path`` and missing parents 0700, without links (inside our staging dir)."""
    missing = []
    while not is_dir(layout, path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        _mkdir(layout, path, (-1, -1), 'rollback makedirs ' + label)


def _move_to_staging(layout, path, target, label):
    _makedirs(layout, os.path.dirname(target), label)
    _rename(layout, path, target, 'rollback unstage ' + label)


def roll_back(layout, journal):
    """Put every live item back as it was before the swap; idempotent, safe to re-run after a crash.

    Items go in reverse order, so the SQLite companions are handled while the database they belong
    to is still live: a -wal/-shm that did not exist before the swap but does now was made by a
    server started on the half-restored database, and leaves with it.
    """
    items = journal['items']
    db_item = [item for item in items if item['name'] == DB_NAME][0]
    for item in reversed(items):
        moved_out = item['existed'] and lexists(layout, item['saved'])
        if _is_restored_copy(layout, item):
            _move_to_staging(layout, item['live'], item['staged'], item['name'])
        elif (not item['staged'] and not item['existed'] and lexists(layout, item['live'])
              and _is_restored_copy(layout, db_item)):
            _move_to_staging(layout, item['live'], os.path.join(journal['staging'], 'debris', item['name']),
                             item['name'])
        if moved_out:
            _rename(layout, item['saved'], item['live'], 'rollback restore ' + item['name'])
    _check_ours(layout, journal['staging'], journal['staging_id'])
    _remove_tree(layout, journal['staging'], 'rollback remove staging')
    _remove_empty_pre_restore(layout, journal['pre_restore'])
    _drop_journal(layout, journal, 'rollback')


def _remove_empty_pre_restore(layout, path):
    """Remove a pre-restore dir that holds no file any more (refuse to delete data)."""
    if not lexists(layout, path):
        return
    _check_ours(layout, path)
    with opened_dir(layout, os.path.dirname(path)) as pfd:
        files = tree_files(pfd, os.path.basename(path), path)
    if files:
        raise SwapError('%s still holds files after the rollback (%s); left in place' % (path, files[0]))
    _remove_tree(layout, path, 'remove empty pre_restore')


def _drop_journal(layout, journal, phase):
    created = journal['created_dirs']
    for path in reversed(created):
        if path != layout.data_dir:
            _rmdir_if_empty(layout, path, phase + ' rmdir ' + path)
    _remove_tree(layout, layout.journal_path, phase + ' remove journal')
    if layout.data_dir in created:
        _rmdir_if_empty(layout, layout.data_dir, phase + ' rmdir data_dir')


def finish(layout, journal):
    """After ``committed``: drop staging and (unless kept) the pre-restore copy, then the journal."""
    _check_ours(layout, journal['staging'], journal['staging_id'])
    _remove_tree(layout, journal['staging'], 'finish remove staging')
    if not journal['keep_pre_restore']:
        _check_ours(layout, journal['pre_restore'], journal['pre_restore_id'])
        _remove_tree(layout, journal['pre_restore'], 'finish remove pre_restore')
    checkpoint('finish remove journal')
    with opened_dir(layout, layout.state_dir) as sfd:
        os.unlink(layout.journal_name, dir_fd=sfd)
        os.fsync(sfd)


def recover(layout):
    """Finish or undo a swap a previous run left behind. Returns None, 'completed' or 'rolled_back'.

    SwapError (nothing changed) for a journal that cannot be trusted, including any in the data dir.
    """
    check_legacy_journal(layout)
    journal = read_journal(layout)
    if journal is None:
        return None
    if journal['state'] == COMMITTED:
        finish(layout, journal)
        return 'completed'
    try:
        roll_back(layout, journal)
    except Exception as exc:
        raise RollbackFailed('an interrupted restore could not be rolled back (%s); the previous files are in '
                             '%s, the journal in %s' % (exc, journal['pre_restore'], layout.journal_path))
    return 'rolled_back'
