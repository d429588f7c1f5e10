"""Gate: ansible-lint passes with the production profile over roles, playbooks and molecule scenarios."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.quality.collection_tree import REPO, committed_files, output_of, role_names, run_tool

CONFIG = REPO / '.ansible-lint'


def test_config_keeps_the_production_profile_offline():
    config = yaml.safe_load(CONFIG.read_text())
    assert config['profile'] == 'production' and config['offline'] is True
    assert 'warn_list' not in config, 'warn_list silences rules; fix them or skip with a reason'
    text = CONFIG.read_text()
    # Each skipped rule carries its reason in a comment right above the list.
    for rule in config.get('skip_list', []):
        before = text[:text.index('- ' + rule)].rstrip().splitlines()
        assert before and before[-1].lstrip().startswith('#'), 'skip of %s has no written reason' % rule


@pytest.mark.slow
@pytest.mark.xdist_group('quality')
def test_ansible_lint_production_profile():
    proc = run_tool(['ansible-lint', '--offline', '--nocolor', '-v'], timeout=1200)
    assert proc.returncode == 0, output_of(proc)
    out = proc.stdout + proc.stderr
    assert re.search(r"Passed: 0 failure\(s\), 0 warning\(s\)", out), output_of(proc)
    assert "Profile 'production' was required, and it passed." in out, output_of(proc)
    # Everything we mean to lint was looked at: roles, playbooks and molecule scenarios.
    expected = ['role roles/%s ' % r for r in role_names()]
    expected += [f for f in committed_files()
                 if re.match(r'(playbooks/[^/]+|extensions/molecule/[^/]+/converge)\.yml$', f)]
    assert any(f.startswith('extensions/molecule/') for f in expected), 'no molecule scenario found'
    missed = [f for f in expected if f not in out]
    assert not missed, 'not linted: %s\n%s' % (missed, output_of(proc))
