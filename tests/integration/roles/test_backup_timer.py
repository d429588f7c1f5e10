"""The backup role's systemd timer: rendered units, systemd-analyze verify, and the runner end to end.

No systemd runs here: the runner is started as the service would start it (the credential in a
$CREDENTIALS_DIRECTORY), against a reference server's data dir.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.nexus.secrets.plugins.module_utils import _retention

from tests.helpers.ansible import REPO, run_playbook
from tests.integration.backup.independent_reader import read_backup

PASSWORD = 'timer-backup-password "q" $x'
HOST = 'nexus-t'

pytestmark = [pytest.mark.slow]


@pytest.fixture
def installed(nexus_server, tmp_path):
    client = nexus_server.client()
    for i in range(4):
        assert client.create('timer/secret-%d' % i, 'value-%d' % i).status_code == 201
    paths = dict((name, tmp_path / name) for name in ('units', 'lib', 'etc', 'backups', 'metrics'))
    paths['metrics'].mkdir()
    paths['units'].mkdir()
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'children': {'nexus_servers': {'hosts': {HOST: {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}}}))
    res = run_playbook(REPO / 'playbooks' / 'backup.yml', inventory=str(inventory), extra_vars={
        'nexus_backup_password': PASSWORD, 'nexus_backup_install_deps': False,
        'nexus_backup_data_dir': str(nexus_server.workdir), 'nexus_backup_dest': str(paths['backups']),
        'nexus_backup_keep_last': 2, 'nexus_backup_compression': 'store', 'nexus_backup_metrics_dir': str(paths['metrics']),
        'nexus_backup_timer': True, 'nexus_backup_timer_enable': False,
        'nexus_backup_timer_python': sys.executable, 'nexus_backup_timer_runner_dir': str(paths['lib']),
        'nexus_backup_timer_config_dir': str(paths['etc']), 'nexus_backup_timer_unit_dir': str(paths['units']),
        'nexus_backup_timer_on_calendar': '*-*-* 02:30:00', 'nexus_backup_timer_randomized_delay': '45min'})
    assert res.rc == 0, res.stdout[-6000:] + res.stderr[-3000:]
    assert PASSWORD not in res.stdout + res.stderr
    paths['server'] = nexus_server
    paths['host_dest'] = paths['backups'] / HOST
    return paths


def unit(paths, suffix):
    return (paths['units'] / ('nexus-backup.' + suffix)).read_text()


def check_rendered_units(installed):
    """No secret in the units or the config; the service hardened; the timer randomised and persistent."""
    service, timer = unit(installed, 'service'), unit(installed, 'timer')
    password_file = installed['etc'] / 'nexus-backup.password'
    config = installed['etc'] / 'nexus-backup.json'
    for line in ('Type=oneshot', 'LoadCredential=nexus-backup-password:%s' % password_file,
                 'ExecStart=%s %s/nexus-backup-runner.py %s' % (sys.executable, installed['lib'], config),
                 'ProtectSystem=strict', 'NoNewPrivileges=true', 'PrivateTmp=true', 'PrivateNetwork=true',
                 'ReadWritePaths=%s %s %s' % (installed['host_dest'], installed['server'].workdir, installed['metrics']),
                 'SuccessExitStatus=75', 'UMask=0077'):
        assert line in service.splitlines(), line
    for line in ('OnCalendar=*-*-* 02:30:00', 'RandomizedDelaySec=45min', 'Persistent=true',
                 'Unit=nexus-backup.service', 'WantedBy=timers.target'):
        assert line in timer.splitlines(), line
    # The password is only in the root-only credentials file.
    assert password_file.read_text() == PASSWORD
    assert oct(password_file.stat().st_mode & 0o777) == '0o600'
    assert oct(installed['etc'].stat().st_mode & 0o777) == '0o700'
    for path in (installed['units'] / 'nexus-backup.service', installed['units'] / 'nexus-backup.timer', config):
        assert PASSWORD not in path.read_text() and 'q" $x' not in path.read_text()
    settings = json.loads(config.read_text())
    assert settings['dest'] == str(installed['host_dest']) and settings['keep_last'] == 2
    assert settings['compression'] == 'store'
    # The backup core was copied next to the runner.
    lib = installed['lib'] / 'ansible_collections' / 'nexus' / 'secrets' / 'plugins' / 'module_utils'
    assert (lib / '_backup.py').read_bytes() == (REPO / 'plugins' / 'module_utils' / '_backup.py').read_bytes()


def check_systemd_analyze_verify(installed):
    units = [str(installed['units'] / 'nexus-backup.service'), str(installed['units'] / 'nexus-backup.timer')]
    proc = subprocess.run(['systemd-analyze', 'verify', '--man=no'] + units, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    # Unknown keys or values are only warnings for systemd: none may appear.
    assert 'nexus-backup' not in proc.stderr, proc.stderr


def run_runner(installed, credentials=None):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('NEXUS_'))
    env.pop('CREDENTIALS_DIRECTORY', None)
    if credentials:
        env['CREDENTIALS_DIRECTORY'] = str(credentials)
    proc = subprocess.run([sys.executable, str(installed['lib'] / 'nexus-backup-runner.py'),
                           str(installed['etc'] / 'nexus-backup.json')], capture_output=True, text=True,
                          env=env, cwd='/', timeout=300, check=False)
    assert PASSWORD not in proc.stdout + proc.stderr
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


def prom(installed):
    text = (installed['metrics'] / 'nexus_backup.prom').read_text()
    return dict(line.split(' ', 1) for line in text.splitlines() if not line.startswith('#'))


def check_runner(installed, tmp_path):
    """The runner backs up as the service would start it."""
    host_dest = installed['host_dest']
    first = [os.path.basename(p) for p, dummy in _retention.dated_backups(str(host_dest))]
    assert len(first) == 1  # the role's own run

    # As systemd starts it: the credential in $CREDENTIALS_DIRECTORY (0400, as LoadCredential= makes it).
    credentials = tmp_path / 'credentials'
    credentials.mkdir(mode=0o700)
    (credentials / 'nexus-backup-password').write_text(PASSWORD)
    (credentials / 'nexus-backup-password').chmod(0o400)
    code, report, stderr = run_runner(installed, credentials)
    assert code == 0, (report, stderr)
    assert report['status'] == 'ok' and report['secrets'] == 4 and report['verified'] is True
    assert os.path.dirname(report['path']) == str(host_dest)
    members = read_backup(report['path'], PASSWORD)
    assert [m['name'] for m in members][0] == 'nexus.db'
    # compression: store - the file outgrows the database it holds (deflate shrinks a test server's many times).
    assert os.path.getsize(report['path']) > len(members[0]['data'])
    assert prom(installed)['nexus_backup_last_run_success'] == '1'
    assert prom(installed)['nexus_backup_secrets'] == '4'

    # Without systemd: the root-only password file named in the config; keep_last 2 prunes the oldest.
    code, report, stderr = run_runner(installed)
    assert code == 0, (report, stderr)
    kept = [os.path.basename(p) for p, dummy in _retention.dated_backups(str(host_dest))]
    assert len(kept) == 2 and first[0] not in kept and report['pruned'] == [str(host_dest / first[0])]

    # Overlap with another run (the timer meeting an AWX job): exit 75, metrics say busy.
    fd = os.open(str(host_dest), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        code, report, stderr = run_runner(installed)
    finally:
        os.close(fd)
    assert code == 75 and report['status'] == 'busy', (report, stderr)
    assert prom(installed)['nexus_backup_last_run_busy'] == '1'

    # A compression the core does not know is refused with a message, and nothing is written.
    config = installed['etc'] / 'nexus-backup.json'
    good = config.read_text()
    config.write_text(json.dumps(dict(json.loads(good), compression='gzip')))
    before = sorted(os.listdir(str(host_dest)))
    code, report, stderr = run_runner(installed)
    assert code == 1 and "compression must be one of deflate, store, not 'gzip'" in report['error'], (report, stderr)
    assert sorted(os.listdir(str(host_dest))) == before
    config.write_text(good)

    # A password file others can read is refused; the failure is in the metrics.
    (installed['etc'] / 'nexus-backup.password').chmod(0o644)
    code, report, stderr = run_runner(installed)
    assert code == 1 and 'mode 0600' in report['error'], (report, stderr)
    values = prom(installed)
    assert values['nexus_backup_last_run_success'] == '0' and 'nexus_backup_last_success_timestamp_seconds' in values


def test_timer_units_and_the_runner_end_to_end(installed, tmp_path):
    check_rendered_units(installed)
    if shutil.which('systemd-analyze') is None:
        print('systemd-analyze verify skipped: systemd-analyze is not installed on this machine')
    else:
        check_systemd_analyze_verify(installed)
    check_runner(installed, tmp_path)


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze is not installed')
def test_systemd_analyze_verify_catches_a_bad_unit(tmp_path):
    """The check above can fail: a broken OnCalendar= is reported."""
    bad = tmp_path / 'bad.timer'
    bad.write_text('[Unit]\nDescription=x\n[Timer]\nOnCalendar=every tuesday-ish\n[Install]\nWantedBy=timers.target\n')
    proc = subprocess.run(['systemd-analyze', 'verify', '--man=no', str(bad)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode != 0
