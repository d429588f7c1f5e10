"""nexus.secrets.nexus_backup_prune through real ansible-playbook runs: a directory of copies, pruned per host."""

from __future__ import annotations

import os

import pytest

from tests.helpers.ansible import run_module

MODULE = 'nexus.secrets.nexus_backup_prune'
pytestmark = [pytest.mark.slow]
NAMES = ['nexus-backup-2026-01-0%d-010000.tar.gz.enc' % day for day in (1, 2, 3)]


def make_copies(directory):
    directory.mkdir(parents=True)
    for name in NAMES:
        (directory / name).write_bytes(b'backup ' + name.encode())
        (directory / (name + '.sha256')).write_text('x  %s\n' % name)


def test_prunes_one_hosts_copies_and_nothing_else(tmp_path):
    mine, other = tmp_path / 'fetched' / 'nexus-a', tmp_path / 'fetched' / 'nexus-b'
    make_copies(mine)
    make_copies(other)
    (mine / 'notes.txt').write_text('not a backup')
    before = sorted(os.listdir(str(mine)))

    check = run_module(MODULE, {'path': str(mine), 'keep_last': 1}, check=True)
    assert check['changed'] and check['pruned'] == [str(mine / NAMES[1]), str(mine / NAMES[0])]
    assert sorted(os.listdir(str(mine))) == before  # check mode removes nothing

    out = run_module(MODULE, {'path': str(mine), 'keep_last': 1})
    assert out['changed'] and out['kept'] == [str(mine / NAMES[2])]
    assert sorted(os.listdir(str(mine))) == sorted([NAMES[2], NAMES[2] + '.sha256', 'notes.txt'])
    assert len(os.listdir(str(other))) == 6  # the other host's copies are untouched

    again = run_module(MODULE, {'path': str(mine), 'keep_last': 1})
    assert not again['changed'] and again['pruned'] == []
    bad = run_module(MODULE, {'path': str(mine), 'keep_last': -1})
    assert bad['failed'] and 'keep_last must not be negative' in bad['msg']
