# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which processes hold a NEXUS data directory's files? (Nothing may be restored or re-keyed under them.)

An HTTP probe only sees a server on the port it asks; a NEXUS on another port, a stopped
(``SIGSTOP``) server, or any other process with ``nexus.db`` open would go unnoticed, and a restore
under it is undone by its next WAL checkpoint. So this looks at the files themselves, on Linux:

- open files: every ``/proc/PID/fd/N`` whose target is one of the files, compared by device and
  inode (``os.stat`` of the fd link follows it to the open file, whatever path it was opened by),
  and by the link text as a second test (a file replaced since it was opened);
- memory maps: ``/proc/PID/maps`` lines with a file's device and inode (SQLite maps ``-shm``);
- locks: ``/proc/locks`` entries on a file's inode, and ``fcntl(F_GETLK)`` on each file, which
  asks the kernel which process holds a conflicting lock without taking one. Every SQLite
  connection holds a read lock on the ``-shm`` (its "dead man switch" byte) and, in WAL mode, a
  shared lock on the database for as long as it is open. The files are opened read-only and
  never written: no SQLite connection is made, so nothing can be checkpointed.

The files are ``nexus.db``, its ``-wal``, ``-shm`` and ``-journal``, and the four key files. The
calling process never counts itself (its own POSIX locks never conflict with F_GETLK either).
Processes this one may not inspect (another user's, without root) are counted, not guessed at;
locks still name them. Private to this collection.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from ansible_collections.nexus.secrets.plugins.module_utils._layout import DB_COMPANION_SUFFIXES, KEY_FILES

PROC = '/proc'
SIGNAL_FD = 'open file'
SIGNAL_MAP = 'memory map'
SIGNAL_LOCK = 'file lock'
MAX_COMMAND = 256
# struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid (native alignment).
_FLOCK = 'hhqqi'
_FLOCK_PAD = b'\0' * 64  # room for the kernel's struct, whatever its tail padding
_SKIP_LINK_PREFIXES = ('socket:', 'pipe:', 'anon_inode:', '/dev/', '/proc/', '/sys/', '/memfd:')


class Target(object):
    """One file to watch: where it is, its label in messages, its (device, inode)."""

    def __init__(self, path, label, st):
        self.path = path
        self.label = label
        self.dev = st.st_dev
        self.ino = st.st_ino

    @property
    def key(self):
        return (self.dev, self.ino)


def targets(db_path, keys_dir):
    """The existing regular files of a data dir that a live server holds (links are not followed)."""
    wanted = [(db_path, os.path.basename(db_path))]
    wanted += [(db_path + s, os.path.basename(db_path) + s) for s in DB_COMPANION_SUFFIXES]
    keys_label = os.path.basename(os.path.normpath(keys_dir))
    wanted += [(os.path.join(keys_dir, name), keys_label + '/' + name) for name in KEY_FILES]
    found = []
    for path, label in wanted:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append(Target(path, label, st))
    return found


def _read_text(path, limit=None):
    with open(path, 'rb') as fh:
        data = fh.read() if limit is None else fh.read(limit)
    return data.decode('utf-8', 'replace')


def command_of(pid, proc=PROC):
    """The command line of ``pid`` (``[comm]`` for a kernel thread or a zombie), or None if gone."""
    base = os.path.join(proc, str(pid))
    try:
        raw = _read_text(os.path.join(base, 'cmdline'), MAX_COMMAND * 4)
    except (IOError, OSError):
        raw = ''
    command = ' '.join(part for part in raw.split('\0') if part)
    if not command:
        try:
            command = '[%s]' % _read_text(os.path.join(base, 'comm')).strip()
        except (IOError, OSError):
            return None
    if len(command) > MAX_COMMAND:
        command = command[:MAX_COMMAND - 3] + '...'
    return command


def _pids(proc):
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def _scan_fds(pid, proc, by_key, by_path):
    """Labels of the targets ``pid`` has open; raise PermissionError when it may not be inspected."""
    fd_dir = os.path.join(proc, str(pid), 'fd')
    hits = set()
    for fd in os.listdir(fd_dir):
        link = os.path.join(fd_dir, fd)
        try:
            text = os.readlink(link)
        except OSError:
            continue  # closed meanwhile
        if text.startswith(_SKIP_LINK_PREFIXES):
            continue
        plain = text[:-len(' (deleted)')] if text.endswith(' (deleted)') else text
        if plain in by_path:
            hits.add(by_path[plain].label)
            continue
        try:
            st = os.stat(link)  # follows the magic link to the open file itself
        except OSError:
            continue
        target = by_key.get((st.st_dev, st.st_ino))
        if target is not None:
            hits.add(target.label)
    return hits


def _scan_maps(pid, proc, by_devino):
    """Labels of the targets ``pid`` has memory-mapped."""
    hits = set()
    try:
        text = _read_text(os.path.join(proc, str(pid), 'maps'))
    except (IOError, OSError):
        return hits
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5 or fields[4] == '0':
            continue
        target = by_devino.get((fields[3], fields[4]))
        if target is not None:
            hits.add(target.label)
    return hits


def _devino_text(target):
    return ('%02x:%02x' % (os.major(target.dev), os.minor(target.dev)), str(target.ino))


def _proc_locks(proc, by_devino):
    """``[(pid, label)]`` from ``/proc/locks`` (pid -1 for an open-file-description lock)."""
    found = []
    try:
        text = _read_text(os.path.join(proc, 'locks'))
    except (IOError, OSError):
        return found
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == '->':
            continue  # a blocked waiter: it holds nothing yet
        try:
            major, minor, ino = fields[5].split(':')
            pid = int(fields[4])
        except ValueError:
            continue
        target = by_devino.get(('%s:%s' % (major, minor), ino))
        if target is not None:
            found.append((pid, target.label))
    return found


def _getlk(path, target):
    """The pid holding a lock on ``path`` (any range) as F_GETLK reports it, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != target.key:
            return None
        request = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0) + _FLOCK_PAD
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, request)
        l_type = struct.unpack(_FLOCK, answer[:struct.calcsize(_FLOCK)])[0]
        if l_type == fcntl.F_UNLCK:
            return None
        return struct.unpack(_FLOCK, answer[:struct.calcsize(_FLOCK)])[4]
    except (IOError, OSError):
        return None
    finally:
        os.close(fd)


def lock_holders(found, proc=PROC, self_pid=None):
    """``[(pid, label)]`` of processes holding a lock on a target (pid 0 or -1: cannot be named here)."""
    self_pid = os.getpid() if self_pid is None else self_pid
    by_devino = dict((_devino_text(t), t) for t in found)
    locks = [item for item in _proc_locks(proc, by_devino) if item[0] != self_pid]
    seen = set(label for dummy, label in locks)
    for target in found:
        pid = _getlk(target.path, target)
        if pid is not None and pid != self_pid and (pid, target.label) not in locks:
            # /proc/locks names devices the way the filesystem does; F_GETLK asks the file itself.
            if target.label not in seen or pid > 0:
                locks.append((pid, target.label))
    return locks


def scan(db_path, keys_dir, proc=PROC, self_pid=None):
    """Who holds the data dir's files. Returns a report dict (see ``report``); reads only."""
    self_pid = os.getpid() if self_pid is None else self_pid
    found = targets(db_path, keys_dir)
    holders = {}
    uninspected = 0
    supported = os.path.isdir(os.path.join(proc, str(self_pid), 'fd'))

    def add(pid, label, signal):
        entry = holders.setdefault(pid, {'files': set(), 'signals': set()})
        entry['files'].add(label)
        entry['signals'].add(signal)

    if found and supported:  # without /proc/PID/fd (not Linux), the locks below are the only signal
        by_key = dict((t.key, t) for t in found)
        by_path = dict((t.path, t) for t in found)
        by_devino = dict((_devino_text(t), t) for t in found)
        for pid in _pids(proc):
            if pid == self_pid:
                continue
            try:
                fd_hits = _scan_fds(pid, proc, by_key, by_path)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM):
                    uninspected += 1
                continue  # ENOENT: the process ended meanwhile
            for label in fd_hits:
                add(pid, label, SIGNAL_FD)
            for label in _scan_maps(pid, proc, by_devino):
                add(pid, label, SIGNAL_MAP)
    for pid, label in lock_holders(found, proc, self_pid):
        add(pid if pid > 0 else None, label, SIGNAL_LOCK)
    return report(holders, uninspected, supported, [t.path for t in found], proc)


def report(holders, uninspected, supported, files, proc=PROC):
    """The result: ``in_use``, ``holders`` (pid, command, files, signals), ``uninspected``, ``supported``."""
    listed = []
    for pid in sorted(holders, key=lambda p: (p is None, p or 0)):
        entry = holders[pid]
        command = command_of(pid, proc) if pid is not None else None
        if command is None:
            command = ('unknown (a lock held from another PID namespace, host or open file description)'
                       if pid is None else 'unknown (the process has ended)')
        listed.append({'pid': pid, 'command': command, 'files': sorted(entry['files']),
                       'signals': sorted(entry['signals'])})
    return {'in_use': bool(listed), 'holders': listed, 'uninspected': uninspected, 'supported': supported,
            'files': files}


def describe(found):
    """One line naming every holder, for messages: ``pid 42 (nexus -addr ...) holds nexus.db, ...``."""
    parts = []
    for holder in found['holders']:
        who = 'pid %s' % holder['pid'] if holder['pid'] is not None else 'a process'
        parts.append('%s (%s) holds %s [%s]' % (who, holder['command'], ', '.join(holder['files']),
                                                ', '.join(holder['signals'])))
    return '; '.join(parts)


def notes(found):
    """Caveats worth a warning: what this scan could not see."""
    out = []
    if not found['supported']:
        out.append('this host has no /proc/PID/fd: open files of other processes could not be checked '
                   '(only file locks were)')
    if found['uninspected']:
        out.append('%d processes of other users could not be inspected (run as root to see them); '
                   'file locks were still checked' % found['uninspected'])
    return out
