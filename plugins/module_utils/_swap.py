# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swap validated, staged files into a NEXUS data directory, crash-safely, with a journal.

``nexusctl backup restore`` overwrites files in place: a failure half-way leaves a mix of old and
new, and a stale ``nexus.db-wal`` is replayed over the restored database. Here every change is a
rename on one filesystem, announced first in a journal written atomically into the data dir:

1. journal ``swapping`` (which live items existed, where they go, where the staged ones are);
2. each existing live item (``nexus.db``, its ``-wal``/``-shm``/``-journal``, the keys dir) is
   renamed into the pre-restore directory, which is itself a complete NEXUS working directory;
3. the staged ``nexus.db`` and keys dir are renamed into place;
4. journal ``committed``; staging (and, unless kept, the pre-restore copy) removed; journal removed.

A crash before ``committed`` is undone by ``recover()`` on the next run (every item goes back where
it was: the old state, complete); a crash after it is finished (the new state, complete). Both are
idempotent: each step checks what is on disk, so recovery itself may be interrupted and re-run.
A failure raised during the swap is rolled back at once the same way.
Private to this collection.
"""

from __future__ import annotations

import errno
import json
import os
import shutil

from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import atomic_write, fsync_path

JOURNAL_NAME = '.nexus-restore.journal'
JOURNAL_FORMAT = 1
SWAPPING = 'swapping'
COMMITTED = 'committed'

# Files SQLite replays or pairs with nexus.db: a leftover from the old database must not meet the new one.
STALE_SUFFIXES = ('-wal', '-shm', '-journal')
DB_NAME = 'nexus.db'
KEYS_NAME = 'data/keys'


class SwapError(Exception):
    """The swap failed and was rolled back: the data dir holds its previous state."""


class RollbackFailed(Exception):
    """The swap failed and so did the rollback: the journal stays, the next run retries it."""


def checkpoint(label):
    """A named point before each change to the data dir (tests inject faults and crashes here)."""


class Layout(object):
    """Where the live files are. ``db_path``/``keys_dir`` default to nexusctl's places in ``data_dir``."""

    def __init__(self, data_dir, db_path=None, keys_dir=None):
        self.data_dir = os.path.abspath(data_dir)
        self.db_path = os.path.abspath(db_path or os.path.join(self.data_dir, DB_NAME))
        self.keys_dir = os.path.abspath(keys_dir or os.path.join(self.data_dir, 'data', 'keys'))
        self.journal_path = os.path.join(self.data_dir, JOURNAL_NAME)

    def live_items(self):
        """``(name, live path, staged name or None)``; ``name`` is also its place in a pre-restore copy."""
        items = [(DB_NAME, self.db_path, DB_NAME)]
        items += [(DB_NAME + s, self.db_path + s, None) for s in STALE_SUFFIXES]
        items.append((KEYS_NAME, self.keys_dir, KEYS_NAME))
        return items

    def stale_paths(self):
        return [(DB_NAME + s, self.db_path + s) for s in STALE_SUFFIXES]


def _rename(src, dst, label):
    checkpoint(label)
    os.rename(src, dst)
    fsync_path(os.path.dirname(src))
    if os.path.dirname(src) != os.path.dirname(dst):
        fsync_path(os.path.dirname(dst))


def _mkdir(path, owner_ids, label):
    checkpoint(label)
    os.mkdir(path, 0o700)
    os.chmod(path, 0o700)  # whatever the umask
    if owner_ids != (-1, -1):
        os.chown(path, owner_ids[0], owner_ids[1])
    fsync_path(os.path.dirname(path))


def _remove_tree(path, label):
    if os.path.lexists(path):
        checkpoint(label)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        fsync_path(os.path.dirname(path))


def _rmdir_if_empty(path, label):
    if os.path.isdir(path) and not os.listdir(path):
        checkpoint(label)
        os.rmdir(path)
        fsync_path(os.path.dirname(path))


def write_journal(path, journal, label):
    checkpoint(label)
    with atomic_write(path, 0o600) as fh:
        fh.write(json.dumps(journal, sort_keys=True, indent=1).encode('utf-8'))


def read_journal(path):
    """The journal dict, or None when there is none; raise SwapError when it is unreadable."""
    try:
        with open(path, 'rb') as fh:
            journal = json.loads(fh.read().decode('utf-8'))
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise SwapError('cannot read the restore journal %s: %s' % (path, exc))
    except ValueError as exc:
        raise SwapError('the restore journal %s is corrupt (%s); inspect the data dir by hand' % (path, exc))
    if journal.get('format') != JOURNAL_FORMAT or journal.get('state') not in (SWAPPING, COMMITTED):
        raise SwapError('the restore journal %s is not one this collection wrote; inspect it by hand' % path)
    return journal


def missing_dirs(layout):
    """Directories the swap must create (outermost first): data dir and the parents of db and keys."""
    wanted = []
    for path in (layout.data_dir, os.path.dirname(layout.db_path), os.path.dirname(layout.keys_dir)):
        chain = []
        while not os.path.isdir(path) and path not in wanted and path not in chain:
            chain.append(path)
            path = os.path.dirname(path)
        wanted.extend(reversed(chain))
    return wanted


def plan(layout, staged_root, staging_dir, pre_restore_dir, keep_pre_restore):
    """The journal for one swap: nothing on disk changes here."""
    items = []
    for name, live, staged_name in layout.live_items():
        items.append({
            'name': name,
            'live': live,
            'existed': os.path.lexists(live),
            'saved': os.path.join(pre_restore_dir, name),
            'staged': os.path.join(staged_root, staged_name) if staged_name else None,
        })
    return {
        'format': JOURNAL_FORMAT,
        'state': SWAPPING,
        'staging': staging_dir,
        'pre_restore': pre_restore_dir,
        'keep_pre_restore': bool(keep_pre_restore and any(item['existed'] for item in items)),
        'created_dirs': missing_dirs(layout),
        'items': items,
    }


def swap_in(layout, journal, owner_ids=(-1, -1)):
    """Run the swap described by ``plan()``. Raise SwapError after a complete rollback."""
    created = journal['created_dirs']
    try:
        if layout.data_dir in created:
            # The journal lives in the data dir, so a missing data dir comes first (a crash right
            # after this leaves only an empty directory behind).
            _mkdir(layout.data_dir, owner_ids, 'mkdir data_dir')
        write_journal(layout.journal_path, journal, 'journal swapping')
    except Exception as exc:
        if layout.data_dir in created and not os.path.lexists(layout.journal_path):
            _rmdir_if_empty(layout.data_dir, 'undo mkdir data_dir')
        raise SwapError('cannot start the swap in %s (%s); nothing was changed' % (layout.data_dir, exc))
    try:
        for path in created:
            if path != layout.data_dir:
                _mkdir(path, owner_ids, 'mkdir ' + path)
        if any(item['existed'] for item in journal['items']):
            _mkdir(journal['pre_restore'], (-1, -1), 'mkdir pre_restore')
            _mkdir(os.path.join(journal['pre_restore'], 'data'), (-1, -1), 'mkdir pre_restore/data')
        for item in journal['items']:
            if item['existed']:
                _rename(item['live'], item['saved'], 'save ' + item['name'])
        for item in journal['items']:
            if item['staged']:
                _rename(item['staged'], item['live'], 'install ' + item['name'])
        journal = dict(journal, state=COMMITTED)
        write_journal(layout.journal_path, journal, 'journal committed')
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


def _is_restored_copy(item):
    """Whether what is live at ``item`` is the copy the swap installed (not the original)."""
    moved_out = item['existed'] and os.path.lexists(item['saved'])
    return bool(item['staged']) and os.path.lexists(item['live']) and (moved_out or not item['existed'])


def _move_to_staging(journal, path, target, label):
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        checkpoint('rollback makedirs ' + label)
        os.makedirs(parent, 0o700)
    _rename(path, target, 'rollback unstage ' + label)


def roll_back(layout, journal):
    """Put every live item back as it was before the swap; idempotent, safe to re-run after a crash.

    Items go in reverse order, so the SQLite companions are handled while the database they belong
    to is still live: a -wal/-shm that did not exist before the swap but does now was made by a
    server started on the half-restored database, and leaves with it.
    """
    items = journal['items']
    db_item = [item for item in items if item['name'] == DB_NAME][0]
    for item in reversed(items):
        moved_out = item['existed'] and os.path.lexists(item['saved'])
        if _is_restored_copy(item):
            _move_to_staging(journal, item['live'], item['staged'], item['name'])
        elif (not item['staged'] and not item['existed'] and os.path.lexists(item['live'])
              and _is_restored_copy(db_item)):
            _move_to_staging(journal, item['live'], os.path.join(journal['staging'], 'debris', item['name']),
                             item['name'])
        if moved_out:
            _rename(item['saved'], item['live'], 'rollback restore ' + item['name'])
    _remove_tree(journal['staging'], 'rollback remove staging')
    _remove_empty_pre_restore(journal['pre_restore'])
    _drop_journal(layout, journal, 'rollback')


def _remove_empty_pre_restore(path):
    """Remove a pre-restore dir that holds no file any more (refuse to delete data)."""
    if not os.path.lexists(path):
        return
    for root, _dirs, files in os.walk(path):
        if files:
            raise SwapError('%s still holds files after the rollback; left in place' % root)
    _remove_tree(path, 'remove empty pre_restore')


def _drop_journal(layout, journal, phase):
    created = journal['created_dirs']
    for path in reversed(created):
        if path != layout.data_dir:
            _rmdir_if_empty(path, phase + ' rmdir ' + path)
    _remove_tree(layout.journal_path, phase + ' remove journal')
    if layout.data_dir in created:
        _rmdir_if_empty(layout.data_dir, phase + ' rmdir data_dir')


def finish(layout, journal):
    """After ``committed``: drop staging and (unless kept) the pre-restore copy, then the journal."""
    _remove_tree(journal['staging'], 'finish remove staging')
    if not journal['keep_pre_restore']:
        _remove_tree(journal['pre_restore'], 'finish remove pre_restore')
    checkpoint('finish remove journal')
    os.unlink(layout.journal_path)
    fsync_path(layout.data_dir)


def recover(layout):
    """Finish or undo a swap a previous run left behind. Returns None, 'completed' or 'rolled_back'."""
    journal = read_journal(layout.journal_path)
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
