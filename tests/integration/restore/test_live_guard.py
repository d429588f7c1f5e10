"""The live-server guard: nexus_restore, nexus_datadir_holders and the DR stop phase see any process
that holds a data dir's files, whatever port it serves, and name it.

Real reference servers on free (never the default) ports, real helper processes, real
ansible-playbook runs; the health URL given to the modules always points at a port nobody
listens on, so only the file-based guard can see the server.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import pytest
import yaml

from ansible_collections.nexus.secrets.plugins.module_utils import _liveness
from tests.integration.restore import backups as b
from tests.integration.restore.test_restore_module import restore_args
from tests.nexus_server.harness import refused_port

RESTORE = 'nexus.secrets.nexus_restore'
HOLDERS = 'nexus.secrets.nexus_datadir_holders'
OLD_KEY_PASSWORD = 'old-key-password'
ROLE = 'nexus.secrets.disaster_recovery : '

# A helper that holds a file open (and, with 'sqlite', a SQLite connection on it) until killed.
HOLDER_SCRIPT = r'''
import os, sqlite3, sys, time
path, how = sys.argv[1], sys.argv[2]
if how == 'sqlite':
    conn = sqlite3.connect(path)
    conn.execute('SELECT count(*) FROM sqlite_master').fetchall()
else:
    fh = open(path, 'rb')
print('ready', flush=True)
time.sleep(600)
'''


@pytest.fixture
def holder():
    """``holder(path, how='open'|'sqlite')`` starts a process that holds ``path``; all are killed at the end."""
    procs = []

    def start(path, how='open'):
        proc = subprocess.Popen([sys.executable, '-c', HOLDER_SCRIPT, str(path), how], stdout=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == 'ready'
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def server_dir(nexus_server_factory, tmp_path):
    """A data dir with a reference server's own data in it (server stopped)."""
    workdir = tmp_path / 'nexus'
    server = nexus_server_factory(workdir=workdir, key_password=OLD_KEY_PASSWORD)
    assert server.client().create('app/one', 'value-one').status_code == 201
    server.stop()
    return server


def assert_refused_naming(out, pid, files=('nexus.db',)):
    assert out.get('failed') is True and out['changed'] is False, out
    assert 'refusing to restore' in out['msg'] and ('pid %d' % pid) in out['msg'], out['msg']
    assert 'nothing was changed' in out['msg']
    named = [h for h in out['holders'] if h['pid'] == pid]
    assert named, out['holders']
    assert set(files) <= set(named[0]['files']), named


def test_refuses_under_a_sqlite_server_on_another_port(ansible_module, server_dir):
    server_dir.start()
    assert server_dir.port != 9000
    before = b.snapshot(server_dir.workdir)
    out = ansible_module(RESTORE, restore_args(server_dir.workdir))
    assert_refused_naming(out, server_dir.pid, ('nexus.db', 'nexus.db-shm', 'nexus.db-wal'))
    assert 'nexus.py' in out['msg']  # the command, not only the pid
    check = ansible_module(RESTORE, restore_args(server_dir.workdir), check=True)
    assert_refused_naming(check, server_dir.pid)
    assert b.snapshot(server_dir.workdir) == before
    assert server_dir.client().get('app/one').json()['value'] == 'value-one'


def test_refuses_under_a_stopped_sigstop_server(ansible_module, server_dir):
    server_dir.start()
    before = b.snapshot(server_dir.workdir)
    os.kill(server_dir.pid, signal.SIGSTOP)
    try:
        out = ansible_module(RESTORE, restore_args(server_dir.workdir))
    finally:
        os.kill(server_dir.pid, signal.SIGCONT)
    assert_refused_naming(out, server_dir.pid, ('nexus.db', 'nexus.db-wal'))
    assert b.snapshot(server_dir.workdir) == before


def test_refuses_while_a_process_only_holds_nexus_db_open(ansible_module, holder, tmp_path):
    data_dir = b.make_data_dir(tmp_path / 'nexus', key_password=OLD_KEY_PASSWORD)
    proc = holder(data_dir / 'nexus.db')  # no lock, no map: only the open file shows it
    before = b.snapshot(data_dir)
    out = ansible_module(RESTORE, restore_args(data_dir))
    assert_refused_naming(out, proc.pid)
    assert out['holders'][0]['signals'] == ['open file']
    assert b.snapshot(data_dir) == before


def test_a_key_file_held_open_counts_too(ansible_module, holder, tmp_path):
    data_dir = b.make_data_dir(tmp_path / 'nexus', key_password=OLD_KEY_PASSWORD)
    proc = holder(data_dir / 'data' / 'keys' / 'master.key')
    out = ansible_module(RESTORE, restore_args(data_dir))
    assert_refused_naming(out, proc.pid, ('keys/master.key',))


def test_force_overrides_and_says_what(ansible_module, holder, tmp_path):
    data_dir = b.make_data_dir(tmp_path / 'nexus', key_password=OLD_KEY_PASSWORD)
    proc = holder(data_dir / 'nexus.db')
    out = ansible_module(RESTORE, restore_args(data_dir, force=True))
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] and out['secrets'] == 12
    assert len(out['overridden']) == 1 and ('pid %d' % proc.pid) in out['overridden'][0]
    assert [h['pid'] for h in out['holders']] == [proc.pid]
    assert any('force=true' in w and ('pid %d' % proc.pid) in w for w in out.get('warnings', [])), out
    # Nothing to override: an empty list, no warning.
    quiet = ansible_module(RESTORE, restore_args(tmp_path / 'other', force=True))
    assert quiet['changed'] and quiet['overridden'] == [] and quiet['holders'] == []
    assert not any('force=true' in w for w in quiet.get('warnings', []))


def test_found_by_inode_through_another_name(holder, tmp_path):
    """A process that opened the database by another path (a hard link) still holds it."""
    data_dir = b.make_data_dir(tmp_path / 'nexus')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    os.link(str(data_dir / 'nexus.db'), str(elsewhere / 'alias.db'))
    proc = holder(elsewhere / 'alias.db')
    found = _liveness.scan(str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'))
    assert [(h['pid'], h['files']) for h in found['holders']] == [(proc.pid, ['nexus.db'])]


def test_sqlite_lock_signal_alone_names_the_holder(holder, tmp_path):
    """Without /proc/PID/fd (or for a process that cannot be inspected) the locks still name it."""
    data_dir = b.make_data_dir(tmp_path / 'nexus')
    proc = holder(data_dir / 'nexus.db', how='sqlite')
    found = _liveness.targets(str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'))
    assert {t.label for t in found} >= {'nexus.db', 'nexus.db-shm'}
    by_getlk = _liveness.lock_holders(found, proc=str(tmp_path / 'no-proc'))  # F_GETLK only
    assert (proc.pid, 'nexus.db-shm') in by_getlk and (proc.pid, 'nexus.db') in by_getlk
    by_proc_locks = _liveness.lock_holders(found)
    assert (proc.pid, 'nexus.db-shm') in by_proc_locks
    report = _liveness.scan(str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'),
                            proc=str(tmp_path / 'no-proc'))
    assert report['in_use'] and not report['supported']
    assert report['holders'][0]['pid'] == proc.pid and report['holders'][0]['signals'] == ['file lock']


def test_the_scan_writes_nothing_and_checkpoints_nothing(nexus_server_factory, tmp_path):
    """A killed server's WAL holds committed rows: the probe must leave it, and every byte, as it was."""
    server = nexus_server_factory(workdir=tmp_path / 'nexus', key_password=OLD_KEY_PASSWORD)
    assert server.client().create('in/wal', 'only-in-the-wal').status_code == 201
    server.kill()
    data_dir = tmp_path / 'nexus'
    assert (data_dir / 'nexus.db-wal').stat().st_size > 0
    before = b.snapshot(data_dir)
    found = _liveness.scan(str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'))
    assert not found['in_use'] and found['holders'] == []
    names = set(os.path.basename(p) for p in found['files'])
    assert names >= {'nexus.db', 'nexus.db-wal', 'nexus.db-shm', 'master.key'}
    assert b.snapshot(data_dir) == before


def test_our_own_process_does_not_count(tmp_path):
    data_dir = b.make_data_dir(tmp_path / 'nexus')
    conn = sqlite3.connect(str(data_dir / 'nexus.db'))
    conn.execute('PRAGMA journal_mode=WAL').fetchall()
    conn.execute('SELECT count(*) FROM secrets').fetchall()
    try:
        with open(str(data_dir / 'data' / 'keys' / 'master.key'), 'rb'):
            found = _liveness.scan(str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'))
    finally:
        conn.close()
    assert found['in_use'] is False and found['holders'] == []


def test_holders_module_names_them_in_check_mode(ansible_module, holder, tmp_path):
    data_dir = b.make_data_dir(tmp_path / 'nexus')
    idle = ansible_module(HOLDERS, {'data_dir': str(data_dir)}, check=True)
    assert idle.get('failed') is not True, idle.get('msg')
    assert idle['in_use'] is False and idle['holders'] == [] and idle['changed'] is False
    proc = holder(data_dir / 'nexus.db', how='sqlite')
    busy = ansible_module(HOLDERS, {'data_dir': str(data_dir)}, check=True)
    assert busy['in_use'] is True and busy['changed'] is False
    assert [h['pid'] for h in busy['holders']] == [proc.pid] and ('pid %d' % proc.pid) in busy['msg']
    assert busy['holders'][0]['signals'] == ['file lock', 'memory map', 'open file']


def _stop_phase(ansible_playbook, tmp_path, data_dir, stop_command, timeout=3):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'name': 'stop phase',
        'ansible.builtin.include_role': {'name': 'nexus.secrets.disaster_recovery', 'tasks_from': 'stop'},
    }]}]
    playbook = tmp_path / 'stop.yml'
    playbook.write_text(yaml.safe_dump(play))
    return ansible_playbook(playbook, extra_vars={
        'nexus_dr_data_dir': str(data_dir), 'nexus_dr_url': 'http://127.0.0.1:%d' % refused_port(),
        'nexus_dr_stop_command': stop_command, 'nexus_dr_start_command': 'true',
        'nexus_dr_health_timeout': timeout,
    })


def test_dr_stop_phase_waits_until_the_server_is_gone(ansible_playbook, server_dir, tmp_path):
    server_dir.start()
    # The stop command returns at once; the server needs a moment to checkpoint and exit.
    stop = '%s -c "import os, signal; os.kill(%d, signal.SIGTERM)"' % (sys.executable, server_dir.pid)
    res = _stop_phase(ansible_playbook, tmp_path, server_dir.workdir, stop, timeout=30)
    assert res.rc == 0, res.stdout[-3000:]
    assert res.task(ROLE + 'Wait until no process holds the data directory\'s files')['in_use'] is False
    assert server_dir.proc.poll() is not None


def test_dr_stop_phase_fails_naming_what_still_holds_the_files(ansible_playbook, server_dir, holder, tmp_path):
    server_dir.start()
    stray = holder(server_dir.workdir / 'nexus.db', how='sqlite')  # e.g. a second server on another port
    stop = '%s -c "import os, signal; os.kill(%d, signal.SIGTERM)"' % (sys.executable, server_dir.pid)
    res = _stop_phase(ansible_playbook, tmp_path, server_dir.workdir, stop, timeout=2)
    assert res.rc != 0
    failed = res.task(ROLE + 'Fail when a process still holds them')
    assert failed.get('failed') is True and ('pid %d' % stray.pid) in failed['msg'], failed
    assert 'did not stop' in failed['msg']
    waited = res.task(ROLE + 'Wait until no process holds the data directory\'s files')
    assert [h['pid'] for h in waited['holders']] == [stray.pid]  # the server itself did stop
