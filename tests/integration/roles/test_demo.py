"""`make demo` end to end (in a temporary directory): it must pass, and never print a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.ansible import REPO, ansible_env

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('molecule')]


def test_demo_recovers_every_secret_and_prints_none(tmp_path):
    demo_dir = tmp_path / 'demo'
    proc = subprocess.run([sys.executable, str(REPO / 'scripts' / 'demo.py')], cwd=REPO, capture_output=True,
                          text=True, timeout=900, check=False, env=ansible_env({'NEXUS_DEMO_DIR': str(demo_dir)}))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    assert '24 of 24 secrets back with identical values and metadata' in output
    assert '# NEXUS disaster recovery report' in output and '| demo-nexus | recovered | 24 | 24 |' in output
    # The passwords the demo generated reach Ansible only through its private vars file.
    vars_file = demo_dir / 'vars.json'
    assert oct(vars_file.stat().st_mode & 0o777) == '0o600'
    generated = json.loads(vars_file.read_text())
    for name in ('nexus_backup_password', 'nexus_dr_key_password'):
        assert generated[name] not in output
        for log in demo_dir.glob('*.log'):
            assert generated[name] not in log.read_text(), log
    # The server was stopped on the way out.
    assert not (demo_dir / 'nexus' / 'nexus.pid').exists()
    assert os.listdir(demo_dir / 'reports')
