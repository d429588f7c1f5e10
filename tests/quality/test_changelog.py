"""Gate: changelog fragments lint clean, and a release changelog can be generated from them."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.quality.collection_tree import (
    FQCN_PREFIX, REPO, copy_collection, module_names, output_of, role_names, run_tool)

FRAGMENTS = REPO / 'changelogs' / 'fragments'


def fragment_files():
    # After a release the directory may be empty, and so absent from a clone.
    return sorted(p for p in FRAGMENTS.glob('*') if p.suffix in ('.yml', '.yaml'))


def galaxy_version():
    return yaml.safe_load((REPO / 'galaxy.yml').read_text())['version']


def released(root=REPO):
    """The releases recorded in changelogs/changelog.yaml."""
    return yaml.safe_load((root / 'changelogs' / 'changelog.yaml').read_text()).get('releases') or {}


def version_added(root, kind, name):
    """A module's or role's version_added, as a tuple of ints."""
    path = (root / 'plugins' / 'modules' / ('%s.py' % name) if kind == 'module'
            else root / 'roles' / name / 'meta' / 'argument_specs.yml')
    found = re.search(r'^\s*version_added:\s*[\'"]?([0-9.]+)', path.read_text(), re.M)
    return tuple(int(part) for part in found.group(1).split('.'))


def test_fragments_and_changelog_yaml_lint_clean():
    proc = run_tool(['antsibull-changelog', 'lint'])
    assert proc.returncode == 0 and not proc.stdout.strip(), output_of(proc)
    proc = run_tool(['antsibull-changelog', 'lint-changelog-yaml', 'changelogs/changelog.yaml'])
    assert proc.returncode == 0 and not proc.stdout.strip(), output_of(proc)


def test_user_visible_features_have_fragments():
    """Unreleased work has fragments; once released, the release records the fragments it consumed."""
    if galaxy_version() in released():
        assert released()[galaxy_version()].get('fragments'), 'release %s records no fragment' % galaxy_version()
        assert (REPO / 'CHANGELOG.md').is_file(), 'released, but CHANGELOG.md is not committed'
    else:
        assert fragment_files(), 'no changelog fragment in changelogs/fragments'
    for path in fragment_files():
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict) and data, '%s is empty' % path.name
        assert 'trivial' not in data or len(data) > 1, '%s has only trivial entries' % path.name


@pytest.mark.slow
@pytest.mark.xdist_group('quality')
def test_release_changelog_is_generated(tmp_path):
    version = galaxy_version()
    coll = copy_collection(tmp_path)
    pending = {p.name for p in fragment_files()}
    if version in released() and pending:
        # Fragments added after a release wait for the next one: release them (in the copy) as the next minor.
        major, minor = version.split('.')[:2]
        version = '%s.%d.0' % (major, int(minor) + 1)
    if version in released():  # already released: regenerate CHANGELOG.md from changelog.yaml
        cmd = ['antsibull-changelog', 'generate']
    else:
        cmd = ['antsibull-changelog', 'release', '--version', version, '--date', '2026-01-01']
    proc = run_tool(cmd, cwd=coll)
    assert proc.returncode == 0, output_of(proc)
    text = (coll / 'CHANGELOG.md').read_text()
    assert 'v%s' % version.replace('.', '\\.') in text
    # New modules and roles are announced from their version_added.
    plain = text.replace('\\', '')
    # A plugin added for a later release (version_added above galaxy.yml's version) waits for it.
    current = tuple(int(part) for part in version.split('.'))
    for kind, names in (('module', module_names(coll)), ('role', role_names(coll))):
        for name in names:
            if version_added(coll, kind, name) <= current:
                assert FQCN_PREFIX + name in plain, '%s missing from CHANGELOG.md (version_added?)' % name
    release = released(coll)[version]
    expected = set(released().get(version, {}).get('fragments', [])) | pending
    assert set(release.get('fragments', [])) >= expected and release.get('fragments')
