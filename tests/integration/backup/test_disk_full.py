"""A really full disk under nexus_backup: dest on a small tmpfs, the module run through ansible.

Needs root and a kernel that lets this process mount tmpfs (``mount -t tmpfs``). Elsewhere it is
skipped, but not in CI (``CI=true``; CI runs as root): there, being unable to mount fails the test, so
the real full-disk check cannot silently stop running. The write-layer mock tests in
test_backup_faults.py cover the same paths without privileges.
"""

import os
import sqlite3
import subprocess

import pytest

from tests.helpers.ansible import run_module

PASSWORD = 'disk-full-backup-password'
NAME = 'nexus-backup-2026-01-01-000000.tar.gz.enc'


def in_ci():
    return os.environ.get('CI', '').lower() == 'true'


def cannot(reason):
    """Skip locally; in CI, where the test must run, fail."""
    if in_ci():
        pytest.fail('%s (CI=true: this test must run in CI)' % reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def small_fs(tmp_path):
    """``mount(size)`` mounts a tmpfs of ``size`` bytes; unmounted at teardown."""
    mounted = []

    def mount(size):
        if os.geteuid() != 0:
            cannot('mounting a tmpfs needs root')
        point = tmp_path / ('fs-%d' % len(mounted))
        point.mkdir()
        try:
            proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%d,mode=0700' % size, 'tmpfs', str(point)],
                                  capture_output=True, text=True, check=False)
        except OSError as exc:  # no mount(8) at all
            cannot('cannot run mount: %s' % exc)
        if proc.returncode:
            cannot('cannot mount tmpfs here: %s' % proc.stderr.strip())
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(['umount', str(point)], check=True)


def logical_db_size(db_path):
    conn = sqlite3.connect('file:%s?mode=ro' % db_path, uri=True)
    try:
        return conn.execute('PRAGMA page_count').fetchone()[0] * conn.execute('PRAGMA page_size').fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def big_server(nexus_server):
    client = nexus_server.client()
    for i in range(60):
        assert client.create('bulk/secret-%03d' % i, os.urandom(6000).hex()).status_code == 201
    return nexus_server


@pytest.mark.parametrize('room,stage,expected', [(0.4, 'snapshot', 'database or disk is full'),
                                                 (1.3, 'encrypted file', 'No space left on device')])
def test_disk_full_leaves_nothing_behind(big_server, small_fs, room, stage, expected):
    snapshot = logical_db_size(str(big_server.db_path))
    dest = small_fs(int(snapshot * room))
    (dest / 'keep.txt').write_text('earlier content')
    out = run_module('nexus.secrets.nexus_backup', {
        'data_dir': str(big_server.workdir), 'dest': str(dest), 'backup_password': PASSWORD, 'name': NAME})
    assert out.get('failed') is True and out['changed'] is False, (stage, out)
    assert expected in out['msg'], out['msg']
    assert sorted(os.listdir(str(dest))) == ['keep.txt']
    usage = os.statvfs(str(dest))
    assert (usage.f_blocks - usage.f_bfree) * usage.f_frsize <= 8192  # the temp files are really gone
