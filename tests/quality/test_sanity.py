"""Gate: ``ansible-test sanity`` passes on the collection with no ignore file (scripts/sanity.sh)."""

from __future__ import annotations

import subprocess

import pytest

from tests.quality.collection_tree import REPO, VENV_BIN, output_of, tool_env

# Sanity tests that must really run (not be skipped as "no tests applicable").
MUST_RUN = ('ansible-doc', 'compile', 'import', 'pep8', 'pylint', 'validate-modules', 'yamllint',
            'runtime-metadata', 'changelog')


def test_there_is_no_sanity_ignore_file():
    assert not list(REPO.glob('tests/sanity/ignore*.txt'))


@pytest.mark.slow
@pytest.mark.xdist_group('quality')
def test_ansible_test_sanity_passes(tmp_path):
    proc = subprocess.run(['bash', str(REPO / 'scripts' / 'sanity.sh')], capture_output=True, text=True,
                          env=tool_env({'SANITY_DIR': str(tmp_path), 'VENV_BIN': str(VENV_BIN)}),
                          timeout=1500, check=False)
    assert proc.returncode == 0, output_of(proc, 40000)
    for name in MUST_RUN:
        assert 'Running sanity test "%s"' % name in proc.stdout + proc.stderr, name
    coll = tmp_path / 'ansible_collections' / 'nexus' / 'secrets'
    assert (coll / 'plugins' / 'modules').is_dir() and not list(coll.glob('tests/sanity/ignore*.txt'))
