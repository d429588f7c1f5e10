"""Leak scan: every module path and playbook at -vvvv with distinctive secrets.

Secret values, the backup, keyring and export passwords, API keys and JWTs (admin's password is
fixed on the reference server, so the API credentials are keys and tokens) must never appear in
ansible-playbook's stdout/stderr, ``ansible.log``, the returned results, any process's argv while
the run goes, or a file left behind that anyone but its owner can read. Backup and export files,
sidecars and restored data are private (0600 files, 0700 dirs).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers.ansible import REPO
from tests.nexus_server.harness import ApiClient, free_port, login, refused_port
from tests.reliability.leakscan import ArgvSampler, Canaries, new_entries, private_modes, scan_files

pytestmark = pytest.mark.slow

CTL = [sys.executable, str(REPO / 'tests' / 'nexus_server' / 'ctl.py')]
SERVER_COMMAND = '%s %s' % (sys.executable, REPO / 'tests' / 'nexus_server' / 'nexus.py')
ANSIBLE_TMP = Path.home() / '.ansible' / 'tmp'
SECRETS = 6


def tag():
    return secrets.token_hex(6)


def canaries():
    """Fresh random secrets per test: a copy of this source file (a build, a sanity run) holds none."""
    return Canaries(backup_password='LEAKCANARY-backup-pw-' + tag(), key_password='LEAKCANARY-keyring-pw-' + tag(),
                    export_password='LEAKCANARY-export-pw-' + tag(),
                    **{'value_%d' % i: 'LEAKCANARY-value-%d-%s' % (i, tag()) for i in range(SECRETS)})


def seed(server, found):
    client = server.client()
    for i in range(SECRETS):
        resp = client.create('app/leak-%d' % i, found.secrets['value_%d' % i], {'team': 'ops'})
        assert resp.status_code == 201, resp.text


def credentials(server, found, name):
    """An API key and a JWT for ``server``, both added to the canaries."""
    key = server.client().create_api_key('leak-scan').json()['key']
    found.add('%s_api_key' % name, key)
    found.add('%s_token' % name, server.token())
    return key, server.token()


def run_scanned(run_playbook, playbook, extra_vars, found, tmp_path, label, **kwargs):
    """Run a playbook at -vvvv with a log file, sampling argv; assert no surface shows a secret."""
    log = tmp_path / ('ansible-%s.log' % label)
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    ansible_tmp_before = set(os.listdir(str(ANSIBLE_TMP))) if ANSIBLE_TMP.is_dir() else set()
    with ArgvSampler(found) as sampler:
        res = run_playbook(playbook, extra_vars=extra_vars, verbosity=4,
                           env={'ANSIBLE_LOG_PATH': str(log)}, **kwargs)
    assert sampler.saw_ansible and sampler.samples > 0
    assert sampler.hits == [], sampler.hits
    assert found.find(res.stdout) == [], 'stdout leaks'
    assert found.find(res.stderr) == [], 'stderr leaks'
    assert found.find(json.dumps(res.data)) == [], 'results leak'
    assert log.is_file() and found.find(log.read_bytes()) == [], 'ansible.log leaks'
    assert '<localhost> EXEC' in log.read_text(), 'the log should hold the -vvvv output'
    roots = [tmp_path, ANSIBLE_TMP] + new_entries(tempfile.gettempdir(), tmp_before)
    problems, checked = scan_files(roots, found)
    assert problems == [], problems
    leftover = [p for p in new_entries(str(ANSIBLE_TMP), ansible_tmp_before) if found.find(open_all(p))]
    assert leftover == [], leftover
    print('leak scan %s: %d argv samples over %d processes, %d files scanned'
          % (label, sampler.samples, len(sampler.processes_seen), checked))
    return res


def open_all(path):
    """Everything under ``path`` as one bytes blob (for a quick canary check)."""
    blobs = []
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), 'rb') as fh:
                    blobs.append(fh.read())
            except OSError:
                pass
    return b'\n'.join(blobs)


def play(path, tasks, hosts='localhost'):
    path.write_text(json.dumps([{'hosts': hosts, 'gather_facts': False, 'tasks': tasks}]))
    return path


def test_every_module_path(nexus_server_factory, ansible_playbook, tmp_path):
    found = canaries()
    source = nexus_server_factory(key_password=found.secrets['key_password'])
    target = nexus_server_factory()
    seed(source, found)
    api_key, token = credentials(source, found, 'source')
    target_key = credentials(target, found, 'target')[0]
    for name in ('backups', 'exports', 'verify-tmp'):
        (tmp_path / name).mkdir()
    restored = tmp_path / 'restored'
    health = 'http://127.0.0.1:%d/health' % refused_port()
    restore_args = {'src': '{{ backup.path }}', 'backup_password': '{{ backup_password }}',
                    'key_password': '{{ key_password }}', 'data_dir': str(restored), 'health_url': health}
    tasks = [
        {'name': 'backup', 'nexus.secrets.nexus_backup': {
            'data_dir': str(source.workdir), 'dest': str(tmp_path / 'backups'),
            'backup_password': '{{ backup_password }}'}, 'register': 'backup'},
        {'name': 'backup check', 'nexus.secrets.nexus_backup': {
            'data_dir': str(source.workdir), 'dest': str(tmp_path / 'backups'),
            'backup_password': '{{ backup_password }}', 'keep_last': 1}, 'check_mode': True},
        {'name': 'backup missing data dir', 'nexus.secrets.nexus_backup': {
            'data_dir': str(tmp_path / 'absent'), 'dest': str(tmp_path / 'backups'),
            'backup_password': '{{ backup_password }}'}, 'ignore_errors': True},
        {'name': 'info', 'nexus.secrets.nexus_backup_info': {
            'path': str(tmp_path / 'backups'), 'backup_password': '{{ backup_password }}',
            'key_password': '{{ key_password }}', 'verify': True, 'tmp_dir': str(tmp_path / 'verify-tmp')}},
        {'name': 'restore check diff', 'nexus.secrets.nexus_restore': restore_args, 'check_mode': True,
         'diff': True},
        {'name': 'restore', 'nexus.secrets.nexus_restore': restore_args, 'diff': True},
        {'name': 'restore wrong password', 'nexus.secrets.nexus_restore': dict(
            restore_args, backup_password='{{ backup_password }}-wrong'), 'ignore_errors': True},
        {'name': 'restore wrong key password', 'nexus.secrets.nexus_restore': dict(
            restore_args, key_password='{{ key_password }}-wrong'), 'ignore_errors': True},
        {'name': 'export plain', 'nexus.secrets.nexus_export': {
            'url': source.url, 'token': '{{ token }}', 'dest': str(tmp_path / 'exports' / 'plain.json')},
         'diff': True},
        {'name': 'export encrypted', 'nexus.secrets.nexus_export': {
            'url': source.url, 'api_key': '{{ api_key }}', 'export_password': '{{ export_password }}',
            'dest': str(tmp_path / 'exports' / 'secrets.json.enc')}},
        {'name': 'export bad token', 'nexus.secrets.nexus_export': {
            'url': source.url, 'token': '{{ token }}x', 'dest': str(tmp_path / 'exports' / 'never.json')},
         'ignore_errors': True},
        {'name': 'import check', 'nexus.secrets.nexus_import': {
            'url': target.url, 'api_key': '{{ target_key }}', 'export_password': '{{ export_password }}',
            'src': str(tmp_path / 'exports' / 'secrets.json.enc')}, 'check_mode': True, 'diff': True},
        {'name': 'import', 'nexus.secrets.nexus_import': {
            'url': target.url, 'api_key': '{{ target_key }}', 'export_password': '{{ export_password }}',
            'src': str(tmp_path / 'exports' / 'secrets.json.enc'), 'overwrite': True}, 'diff': True},
        {'name': 'import wrong password', 'nexus.secrets.nexus_import': {
            'url': target.url, 'api_key': '{{ target_key }}', 'export_password': '{{ export_password }}-wrong',
            'src': str(tmp_path / 'exports' / 'secrets.json.enc')}, 'ignore_errors': True},
    ]
    extra = {'backup_password': found.secrets['backup_password'], 'key_password': found.secrets['key_password'],
             'export_password': found.secrets['export_password'], 'token': token, 'api_key': api_key,
             'target_key': target_key}
    res = run_scanned(ansible_playbook, play(tmp_path / 'modules.yml', tasks), extra, found, tmp_path, 'modules')

    # The runs did what they should (a scan of runs that did nothing would prove nothing).
    assert res.task('info')['backups'][0]['valid'] is True
    assert res.task('backup check').get('failed') is not True and res.task('backup missing data dir')['failed']
    assert res.task('restore')['changed'] is True and res.task('restore wrong password')['failed'] is True
    assert 'does not unlock' in res.task('restore wrong key password')['msg']
    assert res.task('export encrypted')['count'] == SECRETS
    assert res.task('export bad token')['failed'] is True
    assert res.task('import')['created'] == SECRETS
    assert 'export_password does not decrypt' in res.task('import wrong password')['msg']
    backup = Path(res.task('backup')['path'])
    assert private_modes([backup, str(backup) + '.sha256', tmp_path / 'exports' / 'plain.json',
                          tmp_path / 'exports' / 'secrets.json.enc', restored, restored / 'nexus.db',
                          restored / 'data', restored / 'data' / 'keys']
                         + sorted((restored / 'data' / 'keys').iterdir())) == []
    assert os.listdir(str(tmp_path / 'verify-tmp')) == []
    # The scanner does see secrets in files: the plain export holds every value (and is 0600).
    assert len(found.find((tmp_path / 'exports' / 'plain.json').read_bytes())) == SECRETS


def ctl(*args, env=None):
    return subprocess.run(CTL + list(args), capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture
def ctl_server(tmp_path):
    """A reference server run by ctl.py (as the DR role's start/stop commands drive it), keyring
    password from a 0600 environment file; stopped at teardown."""
    found = canaries()
    workdir = tmp_path / 'nexus'
    env_file = tmp_path / 'environment'
    fd = os.open(str(env_file), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as fh:
        fh.write('NEXUS_KEY_PASSWORD="%s"\n' % found.secrets['key_password'])
    port = free_port()
    start = ("sh -c 'set -a && . %s && set +a && exec %s start --workdir %s --port %d'"
             % (env_file, ' '.join(CTL), workdir, port))
    out = subprocess.run(start, shell=True, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    yield dict(found=found, workdir=workdir, env_file=env_file, port=port, start=start,
               stop='%s stop --workdir %s' % (' '.join(CTL), workdir), url='http://127.0.0.1:%d' % port)
    ctl('stop', '--workdir', str(workdir))


def test_backup_drill_and_disaster_recovery_playbooks(ctl_server, ansible_playbook, tmp_path):
    found, url = ctl_server['found'], ctl_server['url']
    client = ApiClient(url, token=login(url))
    for i in range(SECRETS):
        assert client.create('app/leak-%d' % i, found.secrets['value_%d' % i]).status_code == 201
    backups, fetched, reports = tmp_path / 'backups', tmp_path / 'fetched', tmp_path / 'reports'
    common = {'ansible_python_interpreter': sys.executable}

    backup = run_scanned(ansible_playbook, REPO / 'playbooks' / 'backup.yml', dict(common, **{
        'nexus_backup_hosts': 'localhost', 'nexus_backup_password': found.secrets['backup_password'],
        'nexus_backup_key_password': found.secrets['key_password'], 'nexus_backup_data_dir':
        str(ctl_server['workdir']), 'nexus_backup_dest': str(backups), 'nexus_backup_fetch_dir': str(fetched),
        'nexus_backup_install_deps': False, 'nexus_backup_keep_last': 2}), found, tmp_path, 'backup.yml')
    assert backup.rc == 0, backup.stdout[-3000:]
    made = sorted((backups / 'localhost').glob('nexus-backup-*.tar.gz.enc'))  # the role keeps each host apart
    copies = sorted((fetched / 'localhost').iterdir())
    assert len(made) == 1 and len(copies) == 2
    assert private_modes(made + [Path(str(made[0]) + '.sha256')] + copies + [fetched / 'localhost']) == []

    drill = run_scanned(ansible_playbook, REPO / 'playbooks' / 'restore_drill.yml', dict(common, **{
        'nexus_drill_hosts': 'localhost', 'nexus_drill_backup_path': str(backups / 'localhost'),
        'nexus_drill_backup_password': found.secrets['backup_password'],
        'nexus_drill_key_password': found.secrets['key_password'], 'nexus_drill_server_command': SERVER_COMMAND,
        'nexus_drill_report_dir': str(reports / 'drill'), 'nexus_drill_install_deps': False}),
        found, tmp_path, 'restore_drill.yml')
    assert drill.rc == 0, drill.stdout[-3000:]
    assert private_modes(sorted((reports / 'drill').iterdir()) + [reports / 'drill']) == []

    dr = run_scanned(ansible_playbook, REPO / 'playbooks' / 'disaster_recovery.yml', dict(common, **{
        'nexus_dr_hosts': 'localhost', 'nexus_dr_confirm': True, 'nexus_dr_install_deps': False,
        'nexus_dr_backup_path': str(backups / 'localhost'),
        'nexus_dr_backup_password': found.secrets['backup_password'],
        'nexus_dr_key_password': found.secrets['key_password'], 'nexus_dr_api_password': 'admin',
        'nexus_dr_data_dir': str(ctl_server['workdir']), 'nexus_dr_owner': '', 'nexus_dr_group': '',
        'nexus_dr_stop_command': ctl_server['stop'], 'nexus_dr_start_command': ctl_server['start'],
        'nexus_dr_url': url, 'nexus_dr_environment_file': str(ctl_server['env_file']),
        'nexus_dr_environment_owner': '', 'nexus_dr_environment_group': '',
        'nexus_dr_report_dir': str(reports / 'dr'), 'nexus_dr_health_timeout': 40}),
        found, tmp_path, 'disaster_recovery.yml')
    assert dr.rc == 0, dr.stdout[-3000:]
    assert private_modes([ctl_server['env_file'], reports / 'dr'] + sorted((reports / 'dr').iterdir())) == []
    # The environment file's backup copy (old keyring password) is removed after a verified recovery.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('environment.')] == []
    assert ApiClient(url, token=login(url)).list().json()['total'] == SECRETS


def test_migrate_playbook(nexus_server_factory, ansible_playbook, tmp_path):
    found = canaries()
    source = nexus_server_factory(key_password=found.secrets['key_password'])
    target = nexus_server_factory()
    seed(source, found)
    source_token = credentials(source, found, 'source')[1]
    target_token = credentials(target, found, 'target')[1]
    res = run_scanned(ansible_playbook, REPO / 'playbooks' / 'migrate.yml', {
        'nexus_migrate_source_url': source.url, 'nexus_migrate_target_url': target.url,
        'nexus_migrate_source_token': source_token, 'nexus_migrate_target_token': target_token,
        'ansible_python_interpreter': sys.executable}, found, tmp_path, 'migrate.yml')
    assert res.rc == 0, res.stdout[-3000:]
    assert target.client().list().json()['total'] == SECRETS
