"""Crash safety of nexus_keyring_rotate: SIGKILL at every write step, then the next run.

The module's ``main()`` runs in a child process (``killpoints``) that kills itself at event N. A
calibration run records the phase of every event (preflight, decrypt, write, swap, cleanup);
kill points hit every labelled step (``_keyring_rotation.checkpoint``: mkdir staging, each key file written,
fsync, the exchange, each old file removed) plus the first and last event of each phase.

After each kill the keys directory holds exactly the four key files, and they are all old or all
new: each complete set decrypts under exactly one of the two passwords, to the same keys as before.
Then the next run (the real module through ansible-playbook for a sample, the core function the
module calls for the rest) removes any leftover and ends with the new set only.
"""

from __future__ import annotations

import collections
import os
import shutil

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _keyring_rotation, _layout
from tests.helpers.ansible import run_module
from tests.integration.keyring import keyrings as k
from tests.integration.restore import backups as b
from tests.nexus_server import keyring as server_keyring
from tests.reliability import killpoints

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('reliability')]

OLD = 'old-keyring-password'
NEW = 'new-keyring-password'
PHASES = ('preflight', 'decrypt', 'write', 'swap', 'cleanup')
# The swap phase is short: every one of its events is a kill point.
KILLS_PER_PHASE = {'preflight': 1, 'decrypt': 1, 'write': 6, 'swap': 10, 'cleanup': 7}
MODULE_SAMPLE_EVERY = 7


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp('crash-rotate')
    template = base / 'template'
    template.mkdir()
    b.make_db(template / 'nexus.db')
    server_keyring.save(template / 'data' / 'keys', server_keyring.generate_plaintexts(), OLD)
    keys = template / 'data' / 'keys'
    return {'base': base, 'template': template, 'plain': k.plaintexts(keys, OLD), 'old': k.file_bytes(keys)}


def rotate_args(data_dir):
    return {'data_dir': str(data_dir), 'key_password': OLD, 'new_key_password': NEW}


def make_old(world, data_dir):
    shutil.copytree(str(world['template']), str(data_dir))


def which_set(world, data_dir):
    """'old' or 'new': the keys dir holds exactly the four files, opening with exactly one password."""
    keys = data_dir / 'data' / 'keys'
    assert sorted(os.listdir(str(keys))) == sorted(k.KEY_FILES)
    opens = k.opens_with(keys, [OLD, NEW])
    assert len(opens) == 1, 'the key files open with %r' % opens
    assert k.plaintexts(keys, opens[0]) == world['plain']
    if opens == [OLD]:
        assert k.file_bytes(keys) == world['old']
        return 'old'
    assert len(k.salts(keys)) == 1
    return 'new'


def leftovers(data_dir):
    return [n for n in os.listdir(str(data_dir / 'data')) if n.startswith(_keyring_rotation.STAGING_PREFIX)]


def test_rotation_survives_sigkill_at_every_write_step(world):
    calibration = world['base'] / 'calibration' / 'nexus'
    make_old(world, calibration)
    res = killpoints.spawn('nexus_keyring_rotate', rotate_args(calibration), calibration.parent / 'child',
                           record=True)
    assert res.returncode == 0 and res.module_result()['changed'], res.stderr[-3000:]
    assert which_set(world, calibration) == 'new' and not leftovers(calibration)
    record = res.record
    points = killpoints.choose_kill_points(record['phases'], record['labels'], PHASES, KILLS_PER_PHASE)
    steps = sorted(set(label for label in record['labels'].values() if label.startswith('checkpoint')))
    assert len(steps) >= 12, steps  # mkdir, 4 writes, fsync, exchange, fsync, 4 removals, rmdir, fsync

    outcomes = collections.Counter()
    hit_steps = set()
    hit_phases = collections.Counter()
    with_leftover = 0
    for n, index in enumerate(points):
        data_dir = world['base'] / ('kill-%03d' % index) / 'nexus'
        make_old(world, data_dir)
        res = killpoints.spawn('nexus_keyring_rotate', rotate_args(data_dir), data_dir.parent / 'child',
                               kill_at=index)
        assert res.killed, 'event %d: not killed (rc=%s)\n%s' % (index, res.returncode, res.stderr[-3000:])
        hit_phases[res.report['phase']] += 1
        if (res.report['label'] or '').startswith('checkpoint'):
            hit_steps.add(res.report['label'])
        outcomes[which_set(world, data_dir)] += 1
        with_leftover += bool(leftovers(data_dir))
        # The next run: removes the leftover, ends with the new set only.
        if n % MODULE_SAMPLE_EVERY == 0:
            out = run_module('nexus.secrets.nexus_keyring_rotate', rotate_args(data_dir))
            assert out.get('failed') is not True, out.get('msg')
        else:
            _keyring_rotation.rotate(_layout.Layout(str(data_dir)), OLD, NEW)
        assert which_set(world, data_dir) == 'new' and not leftovers(data_dir)
        assert sorted(os.listdir(str(data_dir / 'data'))) == ['keys']
        shutil.rmtree(str(data_dir.parent))
    print('\nROTATE CRASH: %d kills; per phase %s; sets after kill %s; %d left a staging dir; steps hit: %s'
          % (len(points), dict(hit_phases), dict(outcomes), with_leftover, ', '.join(sorted(hit_steps))))
    assert set(hit_phases) == set(PHASES), hit_phases
    assert hit_steps == set(steps), sorted(set(steps) - hit_steps)
    assert outcomes['old'] and outcomes['new'] and with_leftover
