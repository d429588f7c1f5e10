"""Crash safety of nexus_backup: SIGKILL at ~30 points over every phase; failed backups and retention.

The module's ``main()`` (backup, then retention with ``keep_last: 1``) runs in a child process
(``killpoints``) that kills itself at event N, spread over preflight, snapshot, archive, encrypt,
publish (renames, sidecar, private dir removal) and retention (pruning). ``dest`` holds a good
backup from before. It runs twice: on a cleanly stopped data dir (empty WAL: ``nexus.db`` is streamed
from the file under a read lock) and on one a killed server left with committed frames in its WAL
(SQLite's online backup copies the snapshot into the private dir first). After each kill:
- every file under a backup name decrypts, unpacks and passes integrity_check, and its sidecar
  (when there is one) matches; at least one good backup is there (retention never leaves none);
- the source data dir is unchanged;
then the next run (the child without a kill, or the real module via ansible-playbook for a sample)
succeeds and leaves exactly the new backup and its sidecar: no private temp dir, no orphan sidecar.
"""

from __future__ import annotations

import collections
import fcntl
import os
import shutil

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _backup, _layout, _verify
from tests.helpers.ansible import run_module
from tests.reliability import datadirs, killpoints

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('reliability')]

PASSWORD = 'crash-backup-password'
GOOD = 'nexus-backup-2026-01-01-000000.tar.gz.enc'
KILLED = 'nexus-backup-2026-01-02-000000.tar.gz.enc'
NEXT = 'nexus-backup-2026-01-03-000000.tar.gz.enc'
PHASES = ('preflight', 'snapshot', 'archive', 'encrypt', 'publish', 'retention')
KILLS_PER_PHASE = {'preflight': 3, 'snapshot': 5, 'archive': 6, 'encrypt': 6, 'publish': 4, 'retention': 2}
# Right before a name in dest appears or disappears, and right before SQLite copies the database.
PREFERRED = ('os.replace', 'os.rename', 'os.link', 'os.unlink', 'os.rmdir', 'sqlite3.backup')
MODULE_SAMPLE_EVERY = 10


@pytest.fixture(scope='module', params=['stopped', 'killed-server'])
def world(request, tmp_path_factory):
    base = tmp_path_factory.mktemp('crash-backup-' + request.param)
    datadirs.make_data_dir(base / 'src', 'backup-key-password', 'src', padding_bytes=5 << 19,
                           killed=request.param == 'killed-server')
    seeded = base / 'seeded-dest'
    _backup.create_backup(str(base / 'src' / 'nexus.db'), str(base / 'src' / 'data' / 'keys'), str(seeded),
                          PASSWORD, name=GOOD)
    return {'base': base, 'src': base / 'src', 'seeded': seeded, 'src_state': datadirs.state(base / 'src'),
            'kind': request.param}


def backup_args(world, dest, name, keep_last=1):
    return {'data_dir': str(world['src']), 'dest': str(dest), 'backup_password': PASSWORD, 'name': name,
            'keep_last': keep_last}


def check_backup(path, scratch):
    """The backup decrypts, unpacks, passes integrity_check; its sidecar, if any, matches."""
    os.mkdir(str(scratch), 0o700)
    try:
        staged = _verify.stage_backup(str(path), PASSWORD, str(scratch))
        assert staged.integrity == 'ok'
    finally:
        shutil.rmtree(str(scratch))
    sidecar = str(path) + _layout.SIDECAR_SUFFIX
    if os.path.exists(sidecar):
        with open(sidecar) as fh:
            assert fh.read() == _layout.sidecar_line(datadirs.sha256_file(str(path)), os.path.basename(str(path)))


def check_dest_after_kill(dest, scratch):
    """Every file under a backup name is a complete, valid backup; at least one exists. Returns them."""
    backups = sorted(n for n in os.listdir(str(dest)) if _layout.parse_backup_time(n))
    for n, name in enumerate(backups):
        check_backup(os.path.join(str(dest), name), '%s-%d' % (scratch, n))
    assert backups, 'no good backup left in %s: %s' % (dest, os.listdir(str(dest)))
    return backups


def check_source_untouched(world):
    """The database, its WAL and the keys are unchanged. A snapshot killed with its read transaction
    open leaves an *empty* ``-wal`` (and ``-shm``) beside a stopped database: SQLite's own, no data."""
    got = datadirs.state(world['src'])
    assert got['nexus.db'] == world['src_state']['nexus.db']
    wal = world['src'] / 'nexus.db-wal'
    if world['kind'] == 'killed-server':
        assert got['nexus.db-wal'] == world['src_state']['nexus.db-wal']
    else:
        assert not wal.exists() or wal.stat().st_size == 0
    assert {k: v for k, v in got.items() if k.startswith('data/keys')} == \
        {k: v for k, v in world['src_state'].items() if k.startswith('data/keys')}


def test_backup_survives_sigkill_in_every_phase(world):
    base = world['base']
    cal_dest = base / 'calibration' / 'dest'
    shutil.copytree(str(world['seeded']), str(cal_dest))
    res = killpoints.spawn('nexus_backup', backup_args(world, cal_dest, KILLED), base / 'calibration' / 'child',
                           record=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.module_result()['pruned'] == [str(cal_dest / GOOD)]
    phases, labels = res.record['phases'], res.record['labels']
    points = killpoints.choose_kill_points(phases, labels, PHASES, KILLS_PER_PHASE, prefer=PREFERRED)
    assert len(points) >= 30, points
    survived = []
    seen = collections.Counter()
    for n, index in enumerate(points):
        run_dir = base / ('kill-%03d' % index)
        dest = run_dir / 'dest'
        shutil.copytree(str(world['seeded']), str(dest))
        res = killpoints.spawn('nexus_backup', backup_args(world, dest, KILLED), run_dir / 'child', kill_at=index)
        assert res.killed, 'event %d: not killed (rc=%s)\n%s' % (index, res.returncode, res.stderr[-3000:])
        found = check_dest_after_kill(dest, run_dir / 'verify')
        seen[' + '.join('new' if name == KILLED else 'old' for name in found)] += 1
        check_source_untouched(world)
        by_module = n % MODULE_SAMPLE_EVERY == 0
        if by_module:
            out = run_module('nexus.secrets.nexus_backup', backup_args(world, dest, NEXT))
            assert out['changed'] and not out.get('failed'), out
        else:
            nxt = killpoints.spawn('nexus_backup', backup_args(world, dest, NEXT), run_dir / 'next')
            assert nxt.returncode == 0, nxt.stdout[-2000:] + nxt.stderr[-2000:]
        assert sorted(os.listdir(str(dest))) == [NEXT, NEXT + _layout.SIDECAR_SUFFIX], index
        check_backup(dest / NEXT, run_dir / 'verify-next')
        survived.append((res.report['phase'], res.report['label'], by_module))
    per_phase = collections.Counter(phase for phase, _label, _m in survived)
    print('\nBACKUP CRASH (%s): %d kills survived (%d next runs by the real module); events in one run: %d'
          % (world['kind'], len(survived), sum(1 for s in survived if s[2]), len(phases)))
    print('BACKUP CRASH: kills per phase: %s' % dict(sorted(per_phase.items())))
    print('BACKUP CRASH: valid backups in dest after the kill: %s' % dict(sorted(seen.items())))
    print('BACKUP CRASH: steps hit: %s' % ', '.join(sorted({label for _p, label, _m in survived if label})))
    assert set(per_phase) == set(PHASES), per_phase


def test_failed_backup_with_keep_last_1_keeps_the_previous_good_one(world):
    base = world['base'] / 'failing'
    dest = base / 'dest'
    shutil.copytree(str(world['seeded']), str(dest))
    broken = base / 'broken-data-dir'
    shutil.copytree(str(world['src']), str(broken))
    with open(str(broken / 'nexus.db'), 'r+b') as fh:  # a database that cannot be snapshotted
        fh.write(b'this is not an SQLite database any more' * 100)
    out = run_module('nexus.secrets.nexus_backup', {'data_dir': str(broken), 'dest': str(dest),
                                                    'backup_password': PASSWORD, 'name': KILLED, 'keep_last': 1})
    assert out.get('failed') and 'nexus.db' in out['msg'], out
    assert sorted(os.listdir(str(dest))) == [GOOD, GOOD + _layout.SIDECAR_SUFFIX]
    check_backup(dest / GOOD, base / 'verify')


def test_a_running_backup_blocks_the_next_which_then_removes_what_killed_ones_left(world, tmp_path):
    dest = tmp_path / 'dest'
    shutil.copytree(str(world['seeded']), str(dest))
    src = (str(world['src'] / 'nexus.db'), str(world['src'] / 'data' / 'keys'), str(dest), PASSWORD)
    killed = dest / (_backup.PRIVATE_PREFIX + 'killed')
    killed.mkdir(mode=0o700)
    (killed / 'backup.tmp').write_bytes(b'half a backup')
    # A backup in progress holds dest's lock for as long as its private dir exists.
    lock_fd = os.open(str(dest), os.O_RDONLY)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    running = dest / (_backup.PRIVATE_PREFIX + 'running')
    running.mkdir(mode=0o700)
    try:
        with pytest.raises(_backup.BackupError, match='already running'):
            _backup.create_backup(*src, name=KILLED)
        assert running.is_dir() and killed.is_dir()  # nothing is touched while a backup runs
    finally:
        os.close(lock_fd)
    running.rmdir()  # that backup finished
    _backup.create_backup(*src, name=NEXT)
    assert not killed.exists()
    assert sorted(os.listdir(str(dest))) == sorted(n + s for n in (GOOD, NEXT)
                                                   for s in ('', _layout.SIDECAR_SUFFIX))
