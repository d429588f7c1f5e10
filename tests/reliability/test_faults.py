"""A fault-injected server (500/503 answers, 20 ms latency, dropped connections) during export,
import and the disaster_recovery role's verify phase, over several seeds. Export and import meet a
transient outage: with retries they must recover completely, without retries fail cleanly.

The promise: every secret ends up correct (compared with a fault-free read-back) or is precisely
reported - listed in ``unreadable``/``failures`` with a reason, or the whole run fails with a
message saying nothing was changed / what was rolled back. Never silently partial.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.ansible import REPO
from tests.integration.export_import.conftest import call
from tests.nexus_server.harness import ApiClient, free_port, login

pytestmark = pytest.mark.slow

FAULTS = dict(error_rate=0.2, latency_ms=20, drop_rate=0.05)
# Export and import: a transient outage of OUTAGE errors/drops (the server's fault limit), then none.
# With retries >= OUTAGE no single request can fail on every attempt, so a retried run must recover
# completely; without retries the same outage must fail cleanly. The server's own fault record proves
# the outage hit the run.
OUTAGE = dict(error_rate=0.3, latency_ms=20, drop_rate=0.1, limit=3)
RUNS = [(11, 3), (23, 3), (37, 3), (11, 0), (23, 0)]
SECRETS = [dict(path='fault/%02d' % i, value='v-%d-%s' % (i, 'x' * i), metadata={'i': str(i)} if i % 2 else {})
           for i in range(24)]
CTL = [sys.executable, str(REPO / 'tests' / 'nexus_server' / 'ctl.py')]


def truth(server):
    """``{path: (value, metadata)}`` read back without faults (the server restarted clean)."""
    faults, server.faults = server.faults, {}
    server.restart()
    client = server.client()
    found = {}
    for entry in client.list().json()['secrets']:
        body = client.get(entry['path']).json()
        found[body['path']] = (body['value'], body.get('metadata') or {})
    versions = dict((p, client.versions(p).json()['total']) for p in found)
    server.faults = faults
    server.restart()
    return found, versions


def as_map(secrets):
    return dict((s['path'], (s['value'], s.get('metadata') or {})) for s in secrets)


def faulty_server(factory, seed, secrets=()):
    """A sqlite server seeded fault-free, then restarted with a transient outage; and a token taken
    before it (tokens stay valid across restarts), so every injected fault hits the module run."""
    server = factory()
    client = server.client()
    for secret in secrets:
        assert client.create(secret['path'], secret['value'], secret['metadata'] or None).status_code == 201
    token = server.login()
    server.faults = dict(OUTAGE, seed=seed)
    server.restart()
    return server, token


def injected(server):
    """The errors and drops the server records having injected (latency aside)."""
    return [r for r in server.fault_records() if r['fault'] != 'latency']


def run(ansible_module, module, args):
    result = ansible_module(module, args)
    result.pop('_run')
    text = json.dumps(result)
    assert 'Traceback' not in text and 'module_stderr' not in result, result
    return result


@pytest.mark.parametrize('seed, retries', RUNS)
def test_export_recovers_with_retries_and_fails_cleanly_without(
        nexus_server_factory, ansible_module, tmp_path, seed, retries):
    source, token = faulty_server(nexus_server_factory, seed, SECRETS)
    dest = tmp_path / 'export.json'
    out = run(ansible_module, 'nexus.secrets.nexus_export',
              dict(url=source.url, token=token, dest=str(dest), retries=retries, workers=4))
    faults = injected(source)
    assert len(faults) == OUTAGE['limit'], faults  # the whole outage hit this run
    if retries:
        # Recovered: every secret written, with its value and metadata, nothing reported unreadable.
        assert not out.get('failed'), out
        assert out['unreadable'] == [] and out['count'] == len(SECRETS)
        assert as_map(json.loads(dest.read_text())['secrets']) == as_map(SECRETS)
        assert oct(dest.stat().st_mode & 0o777) == oct(0o600)
        print('export seed %d retries %d: recovered from %s' % (seed, retries, faults))
        return
    if out.get('failed'):
        # The listing (or the credentials) failed: said so, and no file was written.
        assert out['msg'].startswith(('cannot list the secrets', 'reading secrets at')), out['msg']
        assert not dest.exists()
        print('export seed %d retries 0: run failed cleanly: %s' % (seed, out['msg']))
        return
    expected = truth(source)[0]
    written = as_map(json.loads(dest.read_text())['secrets'])
    unreadable = dict((u['path'], u['reason']) for u in out['unreadable'])
    assert unreadable, 'without retries, %d injected faults must cost something: %s' % (len(faults), out)
    assert all(written[p] == expected[p] for p in written), 'a secret was exported with a wrong value'
    assert set(written) | set(unreadable) == set(expected) and not set(written) & set(unreadable)
    assert all('HTTP 50' in r or 'cannot reach' in r or 'no answer' in r for r in unreadable.values()), unreadable
    assert out['count'] == len(written) and oct(dest.stat().st_mode & 0o777) == oct(0o600)
    print('export seed %d retries 0: %d written, %d unreadable' % (seed, len(written), len(unreadable)))


def login_despite_faults(url):
    for _attempt in range(50):
        try:
            return login(url)
        except Exception:  # noqa: BLE001 - injected 500/503 or a dropped connection
            continue
    raise AssertionError('could not log in to the faulty server')


@pytest.mark.parametrize('seed, retries', RUNS)
def test_import_recovers_with_retries_and_fails_cleanly_without(
        nexus_server_factory, ansible_module, tmp_path, seed, retries):
    src = tmp_path / 'export.json'
    src.write_text(json.dumps({'exported_at': '2026-01-01T00:00:00Z', 'secrets': SECRETS}))
    # Half the secrets already there, two of them with another value: create, skip and update paths.
    present = [dict(s, value='old') if i < 2 else s for i, s in enumerate(SECRETS[:12])]
    target, token = faulty_server(nexus_server_factory, seed, present)
    out = run(ansible_module, 'nexus.secrets.nexus_import',
              dict(url=target.url, token=token, src=str(src), retries=retries, overwrite=True, workers=4,
                   fail_on_error=False))
    faults = injected(target)
    assert len(faults) == OUTAGE['limit'], faults  # the whole outage hit this run
    now, versions = truth(target)
    wanted = as_map(SECRETS)
    if retries:
        # Recovered: all 24 secrets as in the file, each write sent exactly once (one version for a
        # created secret, two for an updated one), and the counts say what happened.
        assert not out.get('failed') and out['failures'] == [], out
        assert now == wanted
        assert versions == dict((p, 2 if p in ('fault/00', 'fault/01') else 1) for p in wanted)
        assert (out['created'], out['updated'], out['unchanged'], out['skipped_existing']) == (12, 2, 10, 0), out
        print('import seed %d retries %d: recovered from %s' % (seed, retries, faults))
        return
    if out.get('failed'):
        assert out['msg'].startswith('cannot list the secrets') and 'nothing was changed' in out['msg'], out
        assert now == as_map(present)
        print('import seed %d retries 0: run failed cleanly: %s' % (seed, out['msg']))
        return
    failures = dict((f['path'], f['reason']) for f in out['failures'])
    assert failures, 'without retries, %d injected faults must cost something: %s' % (len(faults), out)
    for path, content in wanted.items():
        if path in failures:
            continue  # precisely reported; what the server holds is whatever it held before, or the new value
        assert now.get(path) == content, path
    assert all(failures.values())
    assert out['created'] + out['updated'] + out['unchanged'] + out['skipped_existing'] + len(failures) == len(SECRETS)
    # No write was sent twice: a created secret has one version, an updated one exactly two.
    for path in wanted:
        if path not in failures and path in now:
            expected_versions = 2 if path in ('fault/00', 'fault/01') else 1
            assert versions[path] == expected_versions, (path, versions[path])
    print('import seed %d retries 0: %d correct, %d reported' % (seed, len(SECRETS) - len(failures), len(failures)))


@pytest.mark.parametrize('seed', [23])
def test_disaster_recovery_verify_phase_under_faults(ansible_playbook, ansible_module, tmp_path, seed):
    """The recovered server answers with faults on (the environment file the role's start command
    reads carries NEXUS_FAULT_*): verification retries what is transient, and the role ends
    recovered with exactly the backup's secrets (before the fix, seed 23 rolled back a good
    recovery on one injected 500, blaming the keyring)."""
    workdir, env_file, port = tmp_path / 'nexus', tmp_path / 'environment', free_port()
    url = 'http://127.0.0.1:%d' % port
    env_file.write_text('NEXUS_KEY_PASSWORD="dr-fault-key"\nNEXUS_FAULT_ERROR_RATE=%s\nNEXUS_FAULT_LATENCY_MS=%s\n'
                        'NEXUS_FAULT_DROP_RATE=%s\nNEXUS_FAULT_SEED=%d\n'
                        % (FAULTS['error_rate'], FAULTS['latency_ms'], FAULTS['drop_rate'], seed))
    env_file.chmod(0o600)
    start = "sh -c 'set -a && . %s && set +a && exec %s start --workdir %s --port %d'" % (
        env_file, ' '.join(CTL), workdir, port)
    stop = '%s stop --workdir %s' % (' '.join(CTL), workdir)
    try:
        assert subprocess.run(start, shell=True, timeout=120, check=False).returncode == 0
        client = ApiClient(url, token=login_despite_faults(url))
        for secret in SECRETS[:10]:
            assert call(client.create, secret['path'], secret['value']).status_code == 201
        backups = tmp_path / 'backups'
        backups.mkdir()
        made = run(ansible_module, 'nexus.secrets.nexus_backup',
                   dict(data_dir=str(workdir), dest=str(backups), backup_password='dr-fault-backup'))
        assert made.get('failed') is not True and made['secrets'] == 10, made
        for secret in SECRETS[10:12]:  # the pre-restore state differs from the backup
            assert call(client.create, secret['path'], secret['value']).status_code == 201
        res = ansible_playbook(REPO / 'playbooks' / 'disaster_recovery.yml', extra_vars={
            'nexus_dr_hosts': 'localhost', 'nexus_dr_confirm': True, 'nexus_dr_install_deps': False,
            'ansible_python_interpreter': sys.executable,
            'nexus_dr_backup_path': str(backups), 'nexus_dr_backup_password': 'dr-fault-backup',
            'nexus_dr_key_password': 'dr-fault-key', 'nexus_dr_api_password': 'admin',
            'nexus_dr_data_dir': str(workdir), 'nexus_dr_owner': '', 'nexus_dr_group': '',
            'nexus_dr_stop_command': stop, 'nexus_dr_start_command': start, 'nexus_dr_url': url,
            'nexus_dr_environment_file': str(env_file), 'nexus_dr_environment_owner': '',
            'nexus_dr_environment_group': '', 'nexus_dr_report_dir': str(tmp_path / 'reports'),
            'nexus_dr_health_timeout': 40})
        report = json.loads(next((tmp_path / 'reports').glob('*.json')).read_text())['hosts'][0]
        live = paths_despite_faults(url)
        # Transient answers are retried, so the recovery must not be rolled back because of them.
        assert report['status'] == 'recovered' and res.rc == 0, (report['failed_phase'], report['error'])
        assert int(report['live_secrets']) == 10 and live == set(s['path'] for s in SECRETS[:10])
        print('seed %d: %s %s' % (seed, report['status'], report['error']))
    finally:
        subprocess.run(stop, shell=True, timeout=120, check=False)


def paths_despite_faults(url):
    client = ApiClient(url, token=login_despite_faults(url))
    return set(e['path'] for e in call(client.list).json()['secrets'])
