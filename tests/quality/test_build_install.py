"""Gate: the built collection tarball holds what users need and nothing else, and works once installed.

The tarball is installed into an empty collections path and a playbook runs every module through its
FQCN from there, against live reference servers and a real data dir: anything the modules need that
the build left out fails here.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.helpers.ansible import run_playbook
from tests.quality.collection_tree import (
    FQCN_PREFIX, REPO, module_names, output_of, role_names, run_tool)

PLAYBOOK = Path(__file__).parent / 'playbooks' / 'every_module.yml'
SHIPPED_TOP = {'MANIFEST.json', 'FILES.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'COPYING',
               'changelogs', 'docs', 'meta', 'plugins', 'roles', 'playbooks', 'extensions'}
NEVER_SHIPPED = ('tests/', 'benchmarks/', 'scripts/', 'requirements/', 'extensions/molecule/', '.ci/',
                 '.venv/', '.cache/', '.git/', '.ansible/', 'docs/build/', 'docs/DEVELOPING.md',
                 'Makefile', 'pytest.ini', '.ansible-lint', '.yamllint', '.gitignore', 'galaxy.yml')
BACKUP_PASSWORD = 'quality-backup-password'
KEY_PASSWORD = 'quality-keyring-password'
SECRETS = {'app/db/password': 's3cr3t', 'app/api key': 'k-1', 'ops/tls/cert': '-----BEGIN-----\nx\n'}


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp('build')
    proc = run_tool(['ansible-galaxy', 'collection', 'build', '--output-path', out, REPO])
    assert proc.returncode == 0, output_of(proc)
    version = yaml.safe_load((REPO / 'galaxy.yml').read_text())['version']
    path = out / ('nexus-secrets-%s.tar.gz' % version)
    assert path.is_file(), list(out.iterdir())
    return path


def members(path):
    with tarfile.open(path) as tar:
        return {m.name.rstrip('/'): m for m in tar.getmembers()}


def test_tarball_holds_only_what_users_need(tarball):
    names = members(tarball)
    unexpected = sorted(n for n in names if n.split('/')[0] not in SHIPPED_TOP)
    assert not unexpected, unexpected
    leaked = sorted(n for n in names for bad in NEVER_SHIPPED
                    if n == bad.rstrip('/') or n.startswith(bad if bad.endswith('/') else bad + '/'))
    assert not leaked, leaked
    assert not [n for n in names if '__pycache__' in n or n.endswith(('.pyc', '.retry', '.orig', '~'))]
    assert not [n for n, m in names.items() if n.startswith('extensions') and not m.isdir()]
    needed = {'meta/runtime.yml', 'meta/execution-environment.yml', 'meta/ee-requirements.txt',
              'meta/ee-bindep.txt', 'docs/awx/credential_type.yml', 'changelogs/changelog.yaml'}
    needed |= {'plugins/modules/%s.py' % m for m in module_names()}
    needed |= {str(p.relative_to(REPO)) for p in (REPO / 'plugins').rglob('*.py') if '__pycache__' not in p.parts}
    needed |= {'roles/%s/tasks/main.yml' % r for r in role_names()}
    needed |= {'roles/%s/meta/argument_specs.yml' % r for r in role_names()}
    needed |= {str(p.relative_to(REPO)) for p in (REPO / 'playbooks').rglob('*.yml')}
    assert not sorted(needed - set(names)), sorted(needed - set(names))


def test_playbook_exercises_every_module():
    """New modules are found in plugins/modules; each must have its task in every_module.yml."""
    tasks = yaml.safe_load(PLAYBOOK.read_text())[0]['tasks']
    used = sorted(key[len(FQCN_PREFIX):] for task in tasks for key in task if key.startswith(FQCN_PREFIX))
    assert used == module_names(), 'every_module.yml must call each module once: %s' % used
    for task in tasks:  # results are looked up by task name, which is the module's short name
        assert FQCN_PREFIX + task['name'] in task, task


@pytest.mark.slow
@pytest.mark.xdist_group('quality')
def test_installed_tarball_runs_every_module(tarball, tmp_path, nexus_server_factory):
    collections = tmp_path / 'collections'
    collections.mkdir()
    proc = run_tool(['ansible-galaxy', 'collection', 'install', '--offline', '-p', collections, tarball],
                    env={'ANSIBLE_COLLECTIONS_PATH': str(collections)})
    assert proc.returncode == 0, output_of(proc)
    env = {'ANSIBLE_COLLECTIONS_PATH': str(collections), 'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false'}

    # The modules really come from the installed copy, not from this work tree.
    proc = run_tool(['ansible-doc', '-t', 'module', '--json', FQCN_PREFIX + module_names()[0]], env=env)
    assert proc.returncode == 0, output_of(proc)
    filename = next(iter(json.loads(proc.stdout).values()))['doc']['filename']
    assert filename.startswith(str(collections)), filename

    source = nexus_server_factory(key_password=KEY_PASSWORD)
    client = source.client()
    for path, value in SECRETS.items():
        assert client.create(path, value).status_code == 201
    target = nexus_server_factory()
    scratch = tmp_path / 'scratch'
    extra = {
        'nexus_data_dir': str(source.workdir), 'backup_dir': str(tmp_path / 'backups'),
        'backup_password': BACKUP_PASSWORD, 'key_password': KEY_PASSWORD,
        'scratch_dir': str(scratch), 'source_url': source.url, 'api_password': 'admin',
        'export_file': str(tmp_path / 'export.json'), 'target_url': target.url,
        'target_token': target.token(),
    }
    res = run_playbook(PLAYBOOK, extra_vars=extra, env=env)
    assert res.rc == 0, 'rc=%s\n%s\n%s' % (res.rc, res.stdout[-6000:], res.stderr[-4000:])

    backup = res.task('nexus_backup')
    assert backup['changed'] and Path(backup['path']).is_file() and backup['secrets'] == len(SECRETS)
    assert res.task('nexus_backup_prune')['kept'] == [backup['path']]
    metrics = res.task('nexus_backup_metrics')
    assert 'nexus_backup_secrets %d\n' % len(SECRETS) in metrics['metrics'] and Path(metrics['path']).is_file()
    info = res.task('nexus_backup_info')
    assert info['verified'] and info['latest']['valid'] and info['latest']['keyring_verified']
    assert info['latest']['path'] == backup['path']
    restore = res.task('nexus_restore')
    assert restore['changed'] and restore['keyring_verified'] and restore['secrets'] == len(SECRETS)
    export = res.task('nexus_export')
    assert export['count'] == len(SECRETS)
    imported = res.task('nexus_import')
    assert imported['changed'] and imported['created'] == len(SECRETS)
    assert {s['path'] for s in target.client().list().json()['secrets']} == set(SECRETS)

    # The restored scratch dir is a working NEXUS data dir holding the same secrets.
    restored = nexus_server_factory(workdir=scratch, key_password=KEY_PASSWORD)
    restored_client = restored.client()
    for path, value in SECRETS.items():
        got = restored_client.get(path)
        assert got.status_code == 200 and got.json()['value'] == value, (path, got.text)
