"""Run one of the collection's modules in a child Python process and SIGKILL it at a chosen point.

No kill hook lives in production code: the child installs a profiler (``sys.setprofile`` and
``threading.setprofile``) that counts *events* - calls into the collection's module/module_utils
functions, calls of ``os``-level primitives (rename, unlink, fsync, mkdir, ...) made from them or
from ``shutil``, and SQLite calls (``execute``, ``backup``, ...) made from them - and tags each with
the phase it belongs to (``RESTORE_PHASES`` / ``BACKUP_PHASES``: the phase of the last
phase-defining function entered). A calibration run (``record``) writes the phase sequence; a kill run
(``kill_at=N``) writes the phase and label of event N to ``report`` and then sends itself SIGKILL,
exactly like ``kill -9`` in an outage.

The module's ``main()`` runs in-process with its arguments handed over as Ansible does for a
debugging run, so the whole module code path (argument handling, core calls, retention) is what
gets killed. Arguments travel in a 0600 JSON file, never in argv.

Usage from tests: ``spawn(module, args, workdir, kill_at=None, record=False)``.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / '.cache' / 'collections'
PKG = 'ansible_collections.nexus.secrets.plugins'
# _liveness is left out on purpose: its /proc scan makes a number of calls that changes with the
# processes on the machine, which would move every later kill point between calibration and kill runs.
UTILS = ('_archive', '_backup', '_crypto', '_envelope', '_fsutil', '_health', '_iothreads', '_keyring',
         '_keyring_rotation', '_layout', '_rekey_backups', '_restore', '_retention', '_sqlite', '_staged', '_swap',
         '_verify')

# (module basename, function name or '*') -> phase; functions not listed inherit the current phase.
RESTORE_PHASES = {
    ('nexus_restore', 'main'): 'preflight',
    ('_health', '*'): 'preflight',
    ('_restore', 'restore'): 'preflight',
    ('_swap', 'recover'): 'preflight',
    ('_restore', 'remove_leftovers'): 'preflight',
    ('_verify', 'stage_backup'): 'decrypt',
    ('_crypto', 'derive_key'): 'decrypt',
    ('_envelope', '*'): 'decrypt',
    ('_archive', '*'): 'extract',
    ('_iothreads', '*'): 'extract',
    ('_verify', 'StagedBackup'): 'validate',
    ('_verify', '_check_members'): 'validate',
    ('_verify', 'check_schema'): 'validate',
    ('_sqlite', '*'): 'validate',
    ('_keyring', '*'): 'validate',
    ('_restore', 'prepare_staged'): 'validate',
    ('_restore', 'in_place'): 'validate',
    ('_swap', 'plan'): 'validate',
    ('_swap', 'swap_in'): 'swap',
    ('_swap', 'finish'): 'cleanup',
    # stage_only: preflight, decrypt, extract, validate, then the staged copy is made durable and recorded.
    ('_restore', 'stage_only'): 'preflight',
    ('_staged', '_fsync_tree'): 'record',
    # A restore looks for a staged copy of its src (and, when one matches, moves it into place
    # instead of decrypting): after preflight, before validate.
    ('_staged', 'take'): 'adopt',
    ('_staged', 'adopt'): 'adopt',
}
BACKUP_PHASES = {
    ('nexus_backup', 'main'): 'preflight',
    ('_backup', 'create_backup'): 'preflight',
    ('_sqlite', '*'): 'snapshot',
    ('_archive', '*'): 'archive',
    ('_crypto', 'derive_key'): 'encrypt',
    ('_envelope', '*'): 'encrypt',
    ('_iothreads', '*'): 'encrypt',
    ('_layout', 'sidecar_line'): 'publish',
    # The name and the keep_* rules are worked out before the backup starts.
    ('_layout', 'backup_name'): 'preflight',
    ('_retention', 'keep_rules'): 'preflight',
    ('_retention', 'keep_argument_spec'): 'preflight',
    ('nexus_backup', 'plan_prune'): 'retention',
    ('_retention', '*'): 'retention',
    ('_backup', 'remove_backup'): 'retention',
}
ROTATE_PHASES = {
    ('nexus_keyring_rotate', 'main'): 'preflight',
    ('_keyring_rotation', 'rotate'): 'preflight',
    ('_keyring', 'open_keyring'): 'decrypt',
    ('_keyring', 'seal_keyring'): 'write',
    ('_keyring_rotation', '_write_staging'): 'write',
    ('_keyring_rotation', '_exchange'): 'swap',
    ('_keyring_rotation', '_remove_old'): 'cleanup',
}
REKEY_PHASES = {
    ('nexus_backup_rekey', 'main'): 'preflight',
    ('_rekey_backups', 'rekey_file'): 'rekey',
    ('_rekey_backups', 'fix_sidecar'): 'rekey',
    # The copies in object storage (with a bucket): interleaved with the files, one backup at a time.
    ('nexus_backup_rekey', 'rotate_remote'): 'remote',
    ('_rekey_remote', '*'): 'remote',
}
# Modules whose core reaches beyond UTILS (loaded only for them: importing boto3 costs time).
EXTRA_UTILS = {'nexus_backup_rekey': ('_s3', '_rekey_remote')}
# Calls labelled in the calibration record, so kill points can be put right before them: the
# requests that change what object storage holds.
LABELLED_CALLS = {('_s3', '_put_small'), ('_s3', '_upload_multipart')}
PHASE_MAPS = {'nexus_restore': RESTORE_PHASES, 'nexus_backup': BACKUP_PHASES,
              'nexus_keyring_rotate': ROTATE_PHASES, 'nexus_backup_rekey': REKEY_PHASES}
# Phases only move forward (a function two phases call, like the KDF used again by the keyring
# check, does not send 'validate' back to 'decrypt'); phases of equal rank interleave (streaming).
PHASE_RANKS = {
    'nexus_restore': {'start': 0, 'preflight': 1, 'adopt': 2, 'decrypt': 2, 'extract': 2, 'validate': 3, 'record': 4,
                      'swap': 4, 'cleanup': 5},
    'nexus_backup': {'start': 0, 'preflight': 1, 'snapshot': 2, 'archive': 3, 'encrypt': 3, 'publish': 4,
                     'retention': 5},
    'nexus_keyring_rotate': {'start': 0, 'preflight': 1, 'decrypt': 2, 'write': 3, 'swap': 4, 'cleanup': 5},
    'nexus_backup_rekey': {'start': 0, 'preflight': 1, 'rekey': 2, 'remote': 2},
}
OS_MODULES = ('posix',)


def _qualname_head(code):
    return getattr(code, 'co_qualname', code.co_name).split('.')[0]


class Profiler(object):
    """Counts events, tags them with phases; records them, or kills the process at event ``kill_at``."""

    def __init__(self, phase_map, ranks, files, kill_at=None, report=None, record=False):
        self.phase_map = phase_map
        self.ranks = ranks
        self.files = files  # co_filename -> module basename
        self.kill_at = kill_at
        self.report = report
        self.record = record
        self.phases = []
        self.labels = {}
        self.counter = itertools.count()
        self.phase = 'start'

    def _event(self, label):
        index = next(self.counter)  # atomic: one thread only gets the kill index
        if self.record:
            self.phases.append(self.phase)
            if label:
                self.labels[index] = label
        if index == self.kill_at:
            fd = os.open(self.report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, json.dumps({'index': index, 'phase': self.phase, 'label': label}).encode())
            os.fsync(fd)
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)

    def __call__(self, frame, event, arg):
        module = self.files.get(frame.f_code.co_filename)
        if event == 'call':
            if module is None:
                return
            head = _qualname_head(frame.f_code)
            phase = self.phase_map.get((module, head)) or self.phase_map.get((module, '*'))
            if phase and self.ranks[phase] >= self.ranks[self.phase]:
                self.phase = phase
            label = None
            if frame.f_code.co_name == 'checkpoint':
                label = 'checkpoint ' + str(frame.f_locals.get('label'))
            elif (module, frame.f_code.co_name) in LABELLED_CALLS:
                label = 'call %s.%s' % (module, frame.f_code.co_name)
            self._event(label)
        elif event == 'c_call':
            if getattr(arg, '__module__', None) in OS_MODULES:
                if module is None and not frame.f_code.co_filename.endswith('shutil.py'):
                    return
                self._event('os.' + arg.__name__)
            elif module is not None and type(getattr(arg, '__self__', None)).__module__ == 'sqlite3':
                self._event('sqlite3.' + arg.__name__)  # e.g. right before Connection.backup


def _load_module_files(module_name):
    files = {}
    for name in UTILS + EXTRA_UTILS.get(module_name, ()):
        mod = importlib.import_module('%s.module_utils.%s' % (PKG, name))
        files[mod.__file__] = name
    main_mod = importlib.import_module('%s.modules.%s' % (PKG, module_name))
    files[main_mod.__file__] = module_name
    return main_mod, files


def child_main(spec_path):
    """Entry point of the child: run ``spec['module']``'s main() under the profiler."""
    with open(spec_path) as fh:
        spec = json.load(fh)
    from ansible.module_utils import basic
    basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': spec['args']}).encode()
    basic._ANSIBLE_PROFILE = 'legacy'
    main_mod, files = _load_module_files(spec['module'])
    profiler = Profiler(PHASE_MAPS[spec['module']], PHASE_RANKS[spec['module']], files,
                        kill_at=spec.get('kill_at'), report=spec['report'],
                        record=spec.get('record', False))
    if profiler.record or profiler.kill_at is not None:  # a plain run is not slowed down by the profiler
        threading.setprofile(profiler)
        sys.setprofile(profiler)
    try:
        main_mod.main()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        if profiler.record:
            with open(spec['record_path'], 'w') as fh:
                json.dump({'phases': profiler.phases, 'labels': profiler.labels}, fh)


class ChildResult(object):
    def __init__(self, proc, spec):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.killed = proc.returncode == -signal.SIGKILL
        self.report = None
        self.record = None
        if os.path.exists(spec['report']):
            with open(spec['report']) as fh:
                self.report = json.load(fh)
        if spec.get('record') and os.path.exists(spec['record_path']):
            with open(spec['record_path']) as fh:
                self.record = json.load(fh)

    def module_result(self):
        """The module's JSON result (runs that were not killed)."""
        return json.loads(self.stdout[self.stdout.index('{'):])


def spawn(module, args, workdir, kill_at=None, record=False, timeout=300):
    """Run ``module`` (a key of ``PHASE_MAPS``) with ``args`` in a child; see the module doc."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {'module': module, 'args': args, 'kill_at': kill_at, 'record': record,
            'report': str(workdir / 'kill-report.json'), 'record_path': str(workdir / 'events.json')}
    for stale in (spec['report'], spec['record_path']):
        if os.path.exists(stale):
            os.unlink(stale)
    spec_path = workdir / 'spec.json'
    fd = os.open(str(spec_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as fh:
        json.dump(spec, fh)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), str(COLLECTIONS)])
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(spec_path)], capture_output=True,
                          text=True, env=env, cwd=str(workdir), timeout=timeout, check=False)
    return ChildResult(proc, spec)


def choose_kill_points(phases, labels, wanted, per_phase, prefer=('checkpoint',)):
    """Event indices to kill at: ``per_phase[p]`` spread evenly over each wanted phase's events.

    Events whose label starts with one of ``prefer`` (a ``_swap.checkpoint``, or an ``os`` call such
    as ``os.replace``: the moments right before a directory changes) are preferred where there are
    enough of them, so every such step is hit, plus the first and last event of the phase; where
    there are fewer, all of them are added to the evenly spread ones.
    """
    chosen = []
    for phase in wanted:
        indices = [i for i, p in enumerate(phases) if p == phase]
        if not indices:
            raise AssertionError('phase %r never ran in the calibration pass' % phase)
        labelled = [i for i in indices if labels.get(str(i), '').startswith(tuple(prefer))]
        if len(labelled) >= per_phase[phase]:
            picks = set(_spread(labelled, per_phase[phase])) | set(_spread(indices, 2))
        else:
            picks = set(_spread(indices, per_phase[phase])) | set(labelled)
        chosen.extend(picks)
    return sorted(set(chosen))


def _spread(pool, count):
    if count >= len(pool):
        return list(pool)
    if count == 1:
        return [pool[len(pool) // 2]]
    return [pool[round(k * (len(pool) - 1) / (count - 1))] for k in range(count)]


if __name__ == '__main__':
    child_main(sys.argv[1])
