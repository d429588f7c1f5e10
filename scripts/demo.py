"""`make demo`: the whole disaster-recovery story on this machine, in about a minute.

1. start a NEXUS-compatible reference server with a data directory under .cache/demo
2. seed it with secrets (random values, kept in memory to compare at the end)
3. back it up with playbooks/backup.yml
4. disaster: kill the server, delete its database and keyring
5. recover with playbooks/disaster_recovery.yml
6. read every secret back through the API and compare it with what was seeded
7. print the recovery report

Exit status 0 only when every secret came back with its value. Secret values and passwords are never
printed; passwords reach Ansible through a private vars file, never through argv.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.nexus_server.harness import ApiClient, free_port, login  # noqa: E402

# NEXUS_DEMO_DIR lets the test-suite run the demo in a temporary directory.
DEMO_DIR = Path(os.environ.get('NEXUS_DEMO_DIR') or REPO / '.cache' / 'demo').resolve()
SERVER_DIR = DEMO_DIR / 'nexus'
ENV_FILE = DEMO_DIR / 'environment'
BACKUP_DIR = DEMO_DIR / 'backups'
REPORT_DIR = DEMO_DIR / 'reports'
CTL = REPO / 'tests' / 'nexus_server' / 'ctl.py'
COLLECTIONS = Path(os.environ.get('ANSIBLE_COLLECTIONS_PATH', str(REPO / '.cache' / 'collections')))
SECRET_COUNT = 24


def shown(path):
    """A path as the reader best finds it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def say(text=''):
    print(text, flush=True)


def step(number, title, why):
    say()
    say('== %d. %s' % (number, title))
    say('   %s' % why)


def private_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as fh:
        fh.write(text)


def env_file_line(password):
    """NEXUS_KEY_PASSWORD as systemd's EnvironmentFile and a POSIX shell both read it back."""
    return 'NEXUS_KEY_PASSWORD="%s"\n' % ''.join('\\' + c if c in '\\"`$' else c for c in password)


def start_script(port):
    # Like systemd: the key password comes from the environment file, not from a command line.
    return ('set -a && . %s && set +a && exec %s %s start --workdir %s --port %d'
            % (ENV_FILE, sys.executable, CTL, SERVER_DIR, port))


def start_command(port):
    return "sh -c '%s'" % start_script(port)


def ctl(*args, check=True):
    proc = subprocess.run([sys.executable, str(CTL), *args], capture_output=True, text=True, timeout=120,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError('ctl %s failed: %s' % (args[0], proc.stderr.strip()))
    return proc.stdout.strip()


def run_playbook(name, inventory, vars_file, log_name):
    """Run a playbook, show one line per task, keep the full output in DEMO_DIR/<log_name>."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0', ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_DEPRECATION_WARNINGS='0',
               ANSIBLE_RETRY_FILES_ENABLED='0', PATH=str(Path(sys.executable).parent) + os.pathsep
               + os.environ.get('PATH', ''))
    for leaked in ('NEXUS_KEY_PASSWORD', 'NEXUS_BACKUP_PASSWORD', 'NEXUS_PASSWORD'):
        env.pop(leaked, None)
    cmd = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', str(inventory),
           str(REPO / 'playbooks' / name), '-e', '@' + str(vars_file)]
    say('   $ ansible-playbook -i %s playbooks/%s -e @%s' % (shown(inventory), name, shown(vars_file)))
    task = None
    with open(DEMO_DIR / log_name, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=REPO)
        for line in proc.stdout:
            log.write(line)
            if line.startswith('TASK ['):
                task = line[6:].split(']')[0].split(' : ', 1)[-1]
            elif task and line.split(':', 1)[0] in ('ok', 'changed', 'fatal'):
                status = line.split(':', 1)[0]
                if not task.startswith(('Run phase', 'Run the tasks', 'Start the clock', 'Record the', 'Validating')):
                    say('     %-8s %s' % (status, task))
                task = None
            elif line.lstrip().startswith('"msg":') and ('hosts' in line or 'RTO' in line):
                say('              -> %s' % json.loads('{%s}' % line.strip().rstrip(','))['msg'])
        rc = proc.wait()
    return rc


def main():
    started = time.monotonic()
    if not (COLLECTIONS / 'ansible_collections' / 'nexus' / 'secrets').exists():
        say('The collection is not linked under %s: run `make demo` (it runs `make venv` first).' % COLLECTIONS)
        return 2
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True, mode=0o700)
    key_password = secrets.token_urlsafe(18)
    backup_password = secrets.token_urlsafe(18)
    port = free_port()
    url = 'http://127.0.0.1:%d' % port
    server_started = False
    try:
        step(1, 'Start a NEXUS server', 'The reference server behaves like the real `nexus -storage sqlite`: '
             'database in %s, keyring in data/keys, unlocked by NEXUS_KEY_PASSWORD from %s.'
             % (shown(SERVER_DIR), shown(ENV_FILE)))
        private_file(ENV_FILE, env_file_line(key_password))
        subprocess.run(['sh', '-c', start_script(port)], check=True, capture_output=True, timeout=120)
        server_started = True
        say('   listening on %s' % url)

        step(2, 'Seed %d secrets' % SECRET_COUNT, 'Random values, kept in memory only, to compare after recovery.')
        client = ApiClient(url, token=login(url))
        seeded = {}
        for i in range(SECRET_COUNT):
            path = '%s/service-%02d/%s' % (('prod', 'staging', 'shared')[i % 3], i, ('db-password', 'api-key')[i % 2])
            value = secrets.token_urlsafe(24)
            metadata = {'owner': 'team-%d' % (i % 4)} if i % 2 else None
            resp = client.create(path, value, metadata)
            if resp.status_code != 201:
                raise RuntimeError('seeding %s failed: HTTP %s' % (path, resp.status_code))
            seeded[path] = (value, metadata or {})
        say('   %d secrets under prod/, staging/ and shared/' % len(seeded))

        inventory = DEMO_DIR / 'inventory.yml'
        inventory.write_text(
            'nexus_servers:\n  hosts:\n    demo-nexus:\n      ansible_connection: local\n'
            '      ansible_python_interpreter: %s\n' % sys.executable)
        vars_file = DEMO_DIR / 'vars.json'
        private_file(vars_file, json.dumps({
            'nexus_backup_password': backup_password, 'nexus_backup_data_dir': str(SERVER_DIR),
            'nexus_backup_dest': str(BACKUP_DIR), 'nexus_backup_install_deps': False,
            'nexus_backup_key_password': key_password, 'nexus_backup_keep_last': 7,
            'nexus_dr_backup_password': backup_password, 'nexus_dr_key_password': key_password,
            'nexus_dr_api_password': 'admin', 'nexus_dr_data_dir': str(SERVER_DIR),
            'nexus_dr_backup_path': str(BACKUP_DIR / 'demo-nexus'), 'nexus_dr_url': url,
            'nexus_dr_stop_command': '%s %s stop --workdir %s' % (sys.executable, CTL, SERVER_DIR),
            'nexus_dr_start_command': start_command(port), 'nexus_dr_environment_file': str(ENV_FILE),
            'nexus_dr_owner': '', 'nexus_dr_group': '', 'nexus_dr_environment_owner': '',
            'nexus_dr_environment_group': '', 'nexus_dr_report_dir': str(REPORT_DIR),
            'nexus_dr_hosts': 'demo-nexus', 'nexus_dr_confirm': True, 'nexus_dr_install_deps': False}))

        step(3, 'Back up with playbooks/backup.yml', 'A consistent snapshot while the server runs (the WAL '
             'included), encrypted in nexusctl\'s format, then decrypted again to prove it is usable.')
        if run_playbook('backup.yml', inventory, vars_file, 'backup.log') != 0:
            raise RuntimeError('the backup playbook failed; see %s' % shown(DEMO_DIR / 'backup.log'))

        step(4, 'Disaster', 'kill -9 the server and delete nexus.db and data/keys: every secret is gone.')
        ctl('stop', '--kill', '--workdir', str(SERVER_DIR))
        (SERVER_DIR / 'nexus.db').unlink()
        shutil.rmtree(SERVER_DIR / 'data' / 'keys')
        say('   left in %s: %s' % (shown(SERVER_DIR),
                                   ', '.join(sorted(p.name for p in SERVER_DIR.iterdir())) or 'nothing'))

        step(5, 'Recover with playbooks/disaster_recovery.yml', 'Preflight proves the backup decrypts and the '
             'keyring password unlocks it before anything is touched; then stop, restore, password, start, '
             'verify (with rollback on failure), report.')
        dr_rc = run_playbook('disaster_recovery.yml', inventory, vars_file, 'disaster_recovery.log')

        step(6, 'Compare every secret with what was seeded', 'Read through the API of the recovered server.')
        client = ApiClient(url, token=login(url))
        recovered = {}
        for item in client.list().json()['secrets']:
            body = client.get(item['path']).json()
            recovered[item['path']] = (body.get('value'), body.get('metadata') or {})
        missing = sorted(set(seeded) - set(recovered))
        different = sorted(p for p in set(seeded) & set(recovered) if seeded[p] != recovered[p])
        extra = sorted(set(recovered) - set(seeded))
        same = len(seeded) - len(missing) - len(different)
        say('   %d of %d secrets back with identical values and metadata' % (same, len(seeded)))
        for label, paths in (('missing', missing), ('different', different), ('unexpected', extra)):
            if paths:
                say('   %s: %s' % (label, ', '.join(paths)))

        step(7, 'The recovery report', 'Written by the role as JSON and Markdown under %s.'
             % shown(REPORT_DIR))
        for report in sorted(REPORT_DIR.glob('nexus-dr-*.md')):
            say()
            say(report.read_text())

        ok = dr_rc == 0 and not (missing or different or extra)
        say('%s in %.0f s.' % ('DEMO PASSED: every secret is back' if ok else 'DEMO FAILED',
                               time.monotonic() - started))
        return 0 if ok else 1
    except Exception as exc:  # the demo's last line must say what went wrong, in plain words
        say('DEMO FAILED: %s' % exc)
        return 1
    finally:
        if server_started:
            ctl('stop', '--workdir', str(SERVER_DIR), check=False)


if __name__ == '__main__':
    sys.exit(main())
