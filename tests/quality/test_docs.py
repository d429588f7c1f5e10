"""Gate: every module and role documents itself, the docs lint clean, and a docs site builds."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.quality.collection_tree import (
    FQCN_PREFIX, REPO, copy_collection, module_names, output_of, role_names, run_tool, tool_env)


@pytest.fixture(scope='module')
def collection_root(tmp_path_factory):
    """A collections path holding a real copy of the committed collection."""
    root = tmp_path_factory.mktemp('docs-collections')
    copy_collection(root)
    return root


def test_the_collection_has_modules_and_roles():
    assert len(module_names()) >= 5 and len(role_names()) >= 2, (module_names(), role_names())


@pytest.mark.parametrize('plugin_type,names', [('module', module_names()), ('role', role_names())])
def test_ansible_doc_renders_everything(collection_root, plugin_type, names):
    fqcns = [FQCN_PREFIX + name for name in names]
    env = {'ANSIBLE_COLLECTIONS_PATH': str(collection_root)}
    proc = run_tool(['ansible-doc', '-t', plugin_type] + fqcns, env=env)
    assert proc.returncode == 0 and 'WARNING' not in proc.stderr, output_of(proc)
    for fqcn in fqcns:  # '> MODULE x.y.z (path)' / '> ROLE: *x.y.z* (path)'
        header = r'^> %s:? \*?%s\*? \(%s' % (plugin_type.upper(), re.escape(fqcn), re.escape(str(collection_root)))
        assert re.search(header, proc.stdout, re.M), '%s not rendered:\n%s' % (fqcn, output_of(proc))
    proc = run_tool(['ansible-doc', '-t', plugin_type, '--json'] + fqcns, env=env)
    assert proc.returncode == 0, output_of(proc)
    docs = json.loads(proc.stdout)
    assert sorted(docs) == sorted(fqcns)
    for fqcn, doc in docs.items():
        main = doc['doc'] if plugin_type == 'module' else doc['entry_points']['main']
        # 0.1.0 for the first release's plugins; plugins added since carry the version that brings them.
        assert str(main.get('version_added')) in ('0.1.0', '0.2.0', '0.3.0'), fqcn
        assert main.get('short_description') and main.get('author'), fqcn
        if plugin_type == 'module':
            assert doc['examples'].strip() and doc['return'], fqcn
            assert str(collection_root) in main['filename'], 'docs read from the wrong tree: %s' % main['filename']


@pytest.mark.slow
@pytest.mark.xdist_group('quality')
def test_antsibull_docs_lint_collection_docs(collection_root):
    coll = collection_root / 'ansible_collections' / 'nexus' / 'secrets'
    proc = run_tool(['antsibull-docs', 'lint-collection-docs', '--plugin-docs', '--check-extra-docs-refs',
                     '--validate-collection-refs', 'all', '--disallow-unknown-collection-refs', coll],
                    env={'ANSIBLE_COLLECTIONS_PATH': str(collection_root)})
    assert proc.returncode == 0 and not proc.stdout.strip(), output_of(proc)


@pytest.mark.slow
@pytest.mark.xdist_group('quality')
def test_docs_site_builds(collection_root, tmp_path):
    proc = subprocess.run(['bash', str(REPO / 'scripts' / 'build_docs.sh'), str(tmp_path)],
                          env=tool_env({'ANSIBLE_COLLECTIONS_PATH': str(collection_root)}),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, output_of(proc)
    html = tmp_path / 'html' / 'collections' / 'nexus' / 'secrets'
    for name in module_names():
        assert (html / ('%s_module.html' % name)).is_file(), name
    for name in role_names():
        assert (html / ('%s_role.html' % name)).is_file(), name
    assert (tmp_path / 'html' / 'index.html').is_file()
