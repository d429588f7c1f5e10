"""Each molecule scenario under extensions/molecule, run for real with `molecule test -s NAME`.

The scenarios start their own reference servers (on free loopback ports, under NEXUS_MOLECULE_WORKDIR,
here a tmp_path) and stop them in cleanup/destroy; the finalizer below stops any a crash left behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ansible import REPO, VENV_BIN, ansible_env

SCENARIOS = ['backup', 'disaster_recovery', 'migrate', 'restore_drill']
CTL = REPO / 'tests' / 'nexus_server' / 'ctl.py'

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('molecule')]


def stop_leftover_servers(workdir):
    for pidfile in Path(workdir).rglob('nexus.pid'):
        subprocess.run([sys.executable, str(CTL), 'stop', '--kill', '--workdir', str(pidfile.parent)],
                       capture_output=True, check=False, timeout=60)


@pytest.mark.parametrize('scenario', SCENARIOS)
def test_molecule_scenario(scenario, tmp_path):
    workdir = tmp_path / 'work'
    env = ansible_env({'NEXUS_MOLECULE_WORKDIR': str(workdir), 'NO_COLOR': '1'})
    # Secrets for the scenarios come from their vars files; none may leak in from the caller.
    for name in ('NEXUS_KEY_PASSWORD', 'NEXUS_BACKUP_PASSWORD', 'NEXUS_PASSWORD', 'NEXUS_USERNAME'):
        env.pop(name, None)
    try:
        proc = subprocess.run([str(VENV_BIN / 'molecule'), 'test', '-s', scenario], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=1500, check=False)
    finally:
        stop_leftover_servers(workdir)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, 'molecule test -s %s failed (rc=%s):\n%s' % (scenario, proc.returncode,
                                                                              output[-12000:])
    assert 'failed=0' in output and '%s > verify: Executed: Successful' % scenario in output
