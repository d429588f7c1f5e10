"""The disaster recovery's password phase writes NEXUS_KEY_PASSWORD so that no other user can ever read
it: an unprivileged poller (uid 65534) reads the file in a tight loop while the phase runs, and never
sees the password; the file ends 0600 with its other lines kept, and no backup copy is left."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.ansible import run_playbook

SETPRIV = shutil.which('setpriv')
PYTHON = '/usr/bin/python3'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root to run the poller as another uid (setpriv)'),
    pytest.mark.skipif(not SETPRIV or not os.path.exists(PYTHON), reason='needs setpriv and /usr/bin/python3'),
]

# Runs as uid 65534: try to read every file in the directory until the stop file appears; print how
# many tries were made and in which files the secret was seen.
POLLER = r'''
import os, sys, time
folder, secret, stop = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
seen, reads, deadline = set(), 0, time.time() + 300
while not os.path.exists(stop) and time.time() < deadline:
    for name in os.listdir(folder):
        reads += 1
        try:
            with open(os.path.join(folder, name), 'rb') as fh:
                data = fh.read()
        except OSError:
            continue
        if secret in data:
            seen.add(name)
print('reads=%d leaked=%s' % (reads, ','.join(sorted(seen))))
'''


def write_play(folder, env_file):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [{
        'name': 'Run the password phase',
        'ansible.builtin.include_role': {'name': 'nexus.secrets.disaster_recovery', 'tasks_from': 'password.yml'},
        'vars': {'nexus_dr_environment_file': str(env_file), 'nexus_dr_environment_owner': '',
                 'nexus_dr_environment_group': ''}}]}]
    path = folder / 'play.yml'
    path.write_text(yaml.safe_dump(play))
    return path


@pytest.fixture
def shared_dir():
    """A directory uid 65534 can enter (tmp_path's parents are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix='nexus-envfile-', dir='/tmp'))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_polled(play_dir, env_dir, password):
    stop = play_dir.parent / 'stop'  # where uid 65534 can see it
    poller = subprocess.Popen([SETPRIV, '--reuid=65534', '--regid=65534', '--clear-groups', PYTHON, '-c', POLLER,
                               str(env_dir), password, str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        res = run_playbook(play_dir / 'play.yml', extra_vars={'nexus_dr_key_password': password})
    finally:
        stop.write_text('')
        try:
            out, dummy = poller.communicate(timeout=60)
        finally:
            poller.kill()
            stop.unlink()
    assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert res.data and password not in res.stdout + res.stderr
    reads, leaked = (part.split('=', 1)[1] for part in out.split())
    return int(reads), leaked


def test_password_is_never_readable_by_others(shared_dir):
    play_dir = shared_dir / 'play'
    play_dir.mkdir(mode=0o700)
    env_dir = shared_dir / 'etc-nexus'
    env_dir.mkdir()
    env_dir.chmod(0o755)  # an existing directory is left as it is: here anyone may enter it
    env_file = env_dir / 'environment'
    write_play(play_dir, env_file)

    # A new file.
    reads, leaked = run_polled(play_dir, env_dir, 'first-keyring-password')
    assert leaked == '' and reads > 0
    assert env_file.read_text() == 'NEXUS_KEY_PASSWORD="first-keyring-password"\n'

    # An existing file that others could read: made private before the password goes in; other lines kept.
    env_file.write_text('# managed by hand\nOTHER=keep me\nexport NEXUS_KEY_PASSWORD="old"\nLAST=1')
    env_file.chmod(0o644)
    for password in ('second "keyring" $password', 'third-keyring-password'):
        reads, leaked = run_polled(play_dir, env_dir, password)
        assert leaked == '' and reads > 0, password
        escaped = ''.join('\\' + c if c in '\\"`$' else c for c in password)
        assert env_file.read_text() == '# managed by hand\nOTHER=keep me\nLAST=1\nNEXUS_KEY_PASSWORD="%s"\n' % escaped
        assert oct(env_file.stat().st_mode & 0o777) == '0o600'
        assert sorted(p.name for p in env_dir.iterdir()) == ['environment']  # no backup copy
    # What a shell (and systemd) read back is the exact password.
    out = subprocess.run(['sh', '-c', 'set -a; . "$0"; printf %s "$NEXUS_KEY_PASSWORD"', str(env_file)],
                         capture_output=True, text=True, check=True)
    assert out.stdout == 'third-keyring-password'
