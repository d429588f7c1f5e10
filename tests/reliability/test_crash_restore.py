"""Crash safety of nexus_restore: SIGKILL at >= 30 points spread over every phase, then recover.

The module's ``main()`` runs in a child process (``killpoints``) that kills itself at event N. A
calibration run records the phase of every event (preflight, decrypt, extract, validate, swap,
cleanup); kill points are spread over each phase and hit every labelled swap step. The old state is
a data dir of a reference server killed with ``kill -9`` (``nexus.db-wal``/``-shm`` present); the
new one is a backup of another server with other keys.

After each kill:
- no journal: the live files are exactly the old state or exactly the new one;
- journal ``committed``: they are exactly the new state already;
- journal ``swapping``: the recovery step every run starts with (``_swap.recover``) puts back
  exactly the old state (checked for every other kill; for the others the next run does it itself);
then the next ``nexus_restore`` run (the real module via ansible-playbook for a sample, the core
function the module calls for the rest) ends in the new state, with the old one kept complete in
one pre-restore copy and no staging dir, journal or temp file left.
"""

from __future__ import annotations

import collections
import json
import os
import shutil

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _restore, _swap, _verify
from ansible_collections.nexus.secrets.plugins.module_utils._backup import create_backup
from tests.helpers.ansible import run_module
from tests.nexus_server.harness import NexusServer, refused_port
from tests.reliability import datadirs, killpoints

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('reliability')]

BACKUP_PASSWORD = 'crash-restore-backup-password'
OLD_KEY_PASSWORD = 'old-key-password'
NEW_KEY_PASSWORD = 'new-key-password'
PHASES = ('preflight', 'decrypt', 'extract', 'validate', 'swap', 'cleanup')
KILLS_PER_PHASE = {'preflight': 1, 'decrypt': 5, 'extract': 5, 'validate': 5, 'swap': 10, 'cleanup': 4}
# pre_restore_backup: false - after the commit the clean-up deletes the old state: kill it there too.
NO_COPY_PHASES = ('validate', 'swap', 'cleanup')
NO_COPY_KILLS_PER_PHASE = {'validate': 1, 'swap': 4, 'cleanup': 5}
FRESH_PHASES = ('decrypt', 'swap', 'cleanup')
FRESH_KILLS_PER_PHASE = {'decrypt': 1, 'swap': 4, 'cleanup': 2}
MODULE_SAMPLE_EVERY = 11  # every 11th kill is recovered by the real module through ansible-playbook


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """The old data dir (template), the backup of the new one, and the state hashes of both."""
    base = tmp_path_factory.mktemp('crash-restore')
    datadirs.make_data_dir(base / 'old', OLD_KEY_PASSWORD, 'old', padding_bytes=1 << 20, killed=True)
    new_values = datadirs.make_data_dir(base / 'new', NEW_KEY_PASSWORD, 'new', secrets=8, padding_bytes=5 << 19)
    backup = create_backup(str(base / 'new' / 'nexus.db'), str(base / 'new' / 'data' / 'keys'),
                           str(base / 'backups'), BACKUP_PASSWORD, name='nexus-backup-2026-01-01-000000.tar.gz.enc')
    # The new state is what the backup holds (an online-backup snapshot, not the source file's bytes).
    scratch = base / 'staged'
    scratch.mkdir(mode=0o700)
    staged = _verify.stage_backup(backup['path'], BACKUP_PASSWORD, str(scratch))
    template = base / 'template'
    template.mkdir()
    for name in ('nexus.db', 'nexus.db-wal', 'nexus.db-shm', 'data'):
        src = base / 'old' / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(str(src), str(template / name))
    world = {
        'base': base, 'template': template, 'src': backup['path'], 'new_values': new_values,
        'old': datadirs.state(template), 'new': datadirs.state(staged.root),
    }
    assert 'nexus.db-wal' in world['old'] and 'nexus.db-wal' not in world['new']
    assert world['old']['nexus.db'] != world['new']['nexus.db']
    return world


def restore_args(world, data_dir, keep):
    return {'src': world['src'], 'backup_password': BACKUP_PASSWORD, 'data_dir': str(data_dir),
            'key_password': NEW_KEY_PASSWORD, 'pre_restore_backup': keep,
            # Nothing listens there: the "is a server running?" probe says stopped.
            'health_url': 'http://127.0.0.1:%d/health' % refused_port()}


def read_journal(data_dir):
    """The raw journal of a restore into ``data_dir`` (it lives in the root-only state dir beside it)."""
    path = _layout.Layout(str(data_dir)).journal_path
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def which_state(world, data_dir):
    got = datadirs.state(data_dir)
    return 'old' if got == world['old'] else 'new' if got == world['new'] else 'MIXED: %r' % sorted(got)


def make_old(world, data_dir):
    """The old state in ``data_dir``: a copy of the template, or nothing at all (a fresh host)."""
    if world['old']:
        shutil.copytree(str(world['template']), str(data_dir))
    else:
        os.makedirs(os.path.dirname(str(data_dir)), exist_ok=True)


def calibrate(world, keep, tag=''):
    run_dir = world['base'] / ('calibration-%s-%d%s' % (keep, len(world['old']), tag))
    data_dir = run_dir / 'nexus'
    make_old(world, data_dir)
    res = killpoints.spawn('nexus_restore', restore_args(world, data_dir, keep), run_dir / 'child', record=True)
    assert res.returncode == 0 and res.module_result()['changed'], res.stderr[-3000:]
    assert which_state(world, data_dir) == 'new'
    return res.record


def check_after_kill(world, data_dir, recover_here):
    """The state right after the kill (and after the journal recovery, when one is due and ``recover_here``)."""
    journal = read_journal(data_dir)
    if journal is None:
        found = which_state(world, data_dir)
        assert found in ('old', 'new'), found
        return 'no journal: ' + found
    if journal['state'] == _swap.COMMITTED:
        assert which_state(world, data_dir) == 'new'
        return 'committed: new'
    assert journal['state'] == _swap.SWAPPING
    if not recover_here:
        return 'swapping: left to the next run'
    assert _swap.recover(_layout.Layout(str(data_dir))) == 'rolled_back'
    assert which_state(world, data_dir) == 'old'
    return 'swapping: rolled back to old'


def check_finished(world, data_dir, keep):
    """The new state complete; the old one complete in one pre-restore copy (if kept); nothing else left."""
    assert which_state(world, data_dir) == 'new'
    names = sorted(os.listdir(str(data_dir)))
    pre = [n for n in names if n.startswith(_restore.PRE_RESTORE_PREFIX)]
    keep = keep and bool(world['old'])  # nothing to keep on a fresh host
    assert len(pre) == (1 if keep else 0) and sorted(set(names) - set(pre)) == ['data', 'nexus.db'], names
    assert os.listdir(os.path.join(str(data_dir), 'data')) == ['keys']
    if keep:
        assert datadirs.state(os.path.join(str(data_dir), pre[0])) == world['old']
    assert not datadirs.restore_leftovers(data_dir, os.path.dirname(str(data_dir)))
    state_dir = _layout.Layout(str(data_dir)).state_dir
    assert os.listdir(state_dir) == [_swap.LOCK_NAME], os.listdir(state_dir)  # no journal, no temp file


def kill_and_recover(world, keep, phases, per_phase):
    """Kill a restore at each chosen point, check, recover; return the data dirs and what was hit."""
    record = calibrate(world, keep)
    points = killpoints.choose_kill_points(record['phases'], record['labels'], phases, per_phase)
    survived = []
    outcomes = collections.Counter()
    for n, index in enumerate(points):
        run_dir = world['base'] / ('kill-%s-%d-%03d' % (keep, len(world['old']), index))
        data_dir = run_dir / 'nexus'
        make_old(world, data_dir)
        args = restore_args(world, data_dir, keep)
        res = killpoints.spawn('nexus_restore', args, run_dir / 'child', kill_at=index)
        assert res.killed, 'event %d: not killed (rc=%s)\n%s' % (index, res.returncode, res.stderr[-3000:])
        by_module = n % MODULE_SAMPLE_EVERY == 0
        # Every other kill: recover here to see the old state; else the next run must do it itself.
        outcome = check_after_kill(world, data_dir, recover_here=not by_module and n % 2 == 0)
        outcomes[outcome] += 1
        if by_module:
            out = run_module('nexus.secrets.nexus_restore', args)
            assert not out.get('failed'), out
        else:
            _restore.restore(args['src'], BACKUP_PASSWORD, _layout.Layout(str(data_dir)),
                             key_password=NEW_KEY_PASSWORD, keep_pre_restore=keep)
        check_finished(world, data_dir, keep)
        survived.append((res.report['phase'], res.report['label'], by_module))
    hit = collections.Counter(phase for phase, _label, _mod in survived)
    steps = sorted({label for _p, label, _m in survived if label and label.startswith('checkpoint')})
    print('\nRESTORE CRASH (pre_restore_backup=%s, %s): %d kills survived (%d recovered by the real module); '
          'events in one run: %d' % (keep, 'old data dir' if world['old'] else 'fresh host', len(survived),
                                     sum(1 for s in survived if s[2]), len(record['phases'])))
    print('RESTORE CRASH: kills per phase: %s' % dict(sorted(hit.items())))
    print('RESTORE CRASH: states after kill: %s' % dict(sorted(outcomes.items())))
    print('RESTORE CRASH: swap steps hit: %s' % ', '.join(steps))
    assert set(hit) == set(phases), hit
    return survived, data_dir


def test_restore_survives_sigkill_in_every_phase(world):
    survived, last_data_dir = kill_and_recover(world, True, PHASES, KILLS_PER_PHASE)
    assert len(survived) >= 30
    # The restored copy is a working NEXUS data dir: the reference server serves the backup's secrets.
    server = NexusServer(last_data_dir, key_password=NEW_KEY_PASSWORD)
    server.start()
    try:
        client = server.client()
        for path, value in sorted(world['new_values'].items())[:3]:
            resp = client.get(path)
            assert resp.status_code == 200 and resp.json()['value'] == value, resp.text
    finally:
        server.stop()


def test_restore_without_pre_restore_copy_survives_sigkill_while_deleting_the_old_state(world):
    survived, _data_dir = kill_and_recover(world, False, NO_COPY_PHASES, NO_COPY_KILLS_PER_PHASE)
    assert len(survived) >= 10


def test_restore_onto_a_fresh_host_survives_sigkill(world):
    """No data dir at all before (disaster recovery onto a new host): the old state is 'nothing'."""
    survived, _data_dir = kill_and_recover(dict(world, old={}), True, FRESH_PHASES, FRESH_KILLS_PER_PHASE)
    assert len(survived) >= 6


def test_recovery_itself_survives_sigkill(world):
    """Kill a restore mid-swap, then kill the next run at every step of its rollback; a third run finishes."""
    record = calibrate(world, True, tag='-recovery')
    first = next(int(i) for i, label in record['labels'].items() if label == 'checkpoint install data/keys')

    def killed_mid_swap(name):
        data_dir = world['base'] / name / 'nexus'
        make_old(world, data_dir)
        args = restore_args(world, data_dir, True)
        assert killpoints.spawn('nexus_restore', args, world['base'] / name / 'child', kill_at=first).killed
        assert read_journal(data_dir)['state'] == _swap.SWAPPING
        return data_dir, args

    data_dir, args = killed_mid_swap('recovery-calibration')
    second = killpoints.spawn('nexus_restore', args, data_dir.parent / 'child2', record=True)
    assert second.returncode == 0, second.stderr[-3000:]
    rollback_steps = sorted(int(i) for i, label in second.record['labels'].items()
                            if label.startswith(('checkpoint rollback', 'checkpoint remove empty pre_restore')))
    assert len(rollback_steps) >= 6, second.record['labels']
    for index in rollback_steps:
        data_dir, args = killed_mid_swap('recovery-kill-%03d' % index)
        res = killpoints.spawn('nexus_restore', args, data_dir.parent / 'child2', kill_at=index)
        assert res.killed and res.report['label'].startswith('checkpoint'), res.report
        journal = read_journal(data_dir)
        assert journal is None or journal['state'] == _swap.SWAPPING
        if journal is None:  # the rollback got as far as dropping the journal: the old state is back
            assert which_state(world, data_dir) == 'old'
        _restore.restore(args['src'], BACKUP_PASSWORD, _layout.Layout(str(data_dir)), key_password=NEW_KEY_PASSWORD)
        check_finished(world, data_dir, True)
    print('\nRESTORE CRASH: recovery killed at %d rollback steps, each finished by the next run' % len(rollback_steps))


# --- a recovery that decrypts once: stage_only first, then the restore swaps the staged copy in ---------
STAGE_ONLY_PHASES = ('preflight', 'decrypt', 'extract', 'validate', 'record')
STAGE_ONLY_KILLS_PER_PHASE = {'preflight': 2, 'decrypt': 2, 'extract': 2, 'validate': 2, 'record': 4}
STAGED_PHASES = ('adopt', 'validate', 'swap', 'cleanup')
STAGED_KILLS_PER_PHASE = {'adopt': 5, 'validate': 2, 'swap': 6, 'cleanup': 3}


def stage_first(world, data_dir):
    out = _restore.stage_only(world['src'], BACKUP_PASSWORD, _layout.Layout(str(data_dir)),
                              key_password=NEW_KEY_PASSWORD)
    assert out['staged'] is True


def test_stage_only_killed_anywhere_changes_nothing_and_the_next_restore_cleans_up(world):
    run_dir = world['base'] / 'stage-calibration'
    data_dir = run_dir / 'nexus'
    make_old(world, data_dir)
    args = dict(restore_args(world, data_dir, True), stage_only=True)
    res = killpoints.spawn('nexus_restore', args, run_dir / 'child', record=True)
    assert res.returncode == 0 and res.module_result()['staged'] is True, res.stderr[-3000:]
    assert which_state(world, data_dir) == 'old'
    points = killpoints.choose_kill_points(res.record['phases'], res.record['labels'], STAGE_ONLY_PHASES,
                                           STAGE_ONLY_KILLS_PER_PHASE)
    hit = collections.Counter()
    for index in points:
        run_dir = world['base'] / ('stage-kill-%03d' % index)
        data_dir = run_dir / 'nexus'
        make_old(world, data_dir)
        killed = killpoints.spawn('nexus_restore', dict(restore_args(world, data_dir, True), stage_only=True),
                                  run_dir / 'child', kill_at=index)
        assert killed.killed, killed.stderr[-3000:]
        hit[killed.report['phase']] += 1
        # Staging never touches the data dir, whatever the moment it dies.
        assert which_state(world, data_dir) == 'old' and read_journal(data_dir) is None
        out = _restore.restore(world['src'], BACKUP_PASSWORD, _layout.Layout(str(data_dir)),
                               key_password=NEW_KEY_PASSWORD, keep_pre_restore=True)
        assert out['changed']
        check_finished(world, data_dir, True)
    print('\nSTAGE CRASH: kills per phase: %s' % dict(sorted(hit.items())))
    assert set(hit) == set(STAGE_ONLY_PHASES), hit


def test_restore_of_a_staged_copy_decrypts_nothing_and_survives_sigkill(world):
    run_dir = world['base'] / 'staged-calibration'
    data_dir = run_dir / 'nexus'
    make_old(world, data_dir)
    stage_first(world, data_dir)
    args = restore_args(world, data_dir, True)
    res = killpoints.spawn('nexus_restore', args, run_dir / 'child', record=True)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.module_result()
    assert out['changed'] and out['staged_copy_used'] is True
    # The proof of one decryption per recovery: not one event of the restore decrypts or unpacks.
    assert 'adopt' in res.record['phases']
    assert not set(res.record['phases']) & {'decrypt', 'extract'}, collections.Counter(res.record['phases'])
    check_finished(world, data_dir, True)
    points = killpoints.choose_kill_points(res.record['phases'], res.record['labels'], STAGED_PHASES,
                                           STAGED_KILLS_PER_PHASE)
    hit, outcomes = collections.Counter(), collections.Counter()
    for n, index in enumerate(points):
        run_dir = world['base'] / ('staged-kill-%03d' % index)
        data_dir = run_dir / 'nexus'
        make_old(world, data_dir)
        stage_first(world, data_dir)
        killed = killpoints.spawn('nexus_restore', restore_args(world, data_dir, True), run_dir / 'child',
                                  kill_at=index)
        assert killed.killed, killed.stderr[-3000:]
        hit[killed.report['phase']] += 1
        outcomes[check_after_kill(world, data_dir, recover_here=n % 2 == 0)] += 1
        # The next run uses the staged copy if it is still whole and recorded, else validates again.
        _restore.restore(world['src'], BACKUP_PASSWORD, _layout.Layout(str(data_dir)), key_password=NEW_KEY_PASSWORD,
                         keep_pre_restore=True)
        check_finished(world, data_dir, True)
    print('\nSTAGED RESTORE CRASH: kills per phase: %s; states after kill: %s'
          % (dict(sorted(hit.items())), dict(sorted(outcomes.items()))))
    assert set(hit) == set(STAGED_PHASES), hit
