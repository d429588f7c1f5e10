"""Recovery time (RTO) of playbooks/disaster_recovery.yml on real-shaped databases. Prints figures only.

    .venv/bin/python benchmarks/dr_rto.py [--sizes 8,64,512,1024] [--compression deflate|store] [--keep DIR]

For each size (MiB of ``nexus.db``; default 8, 64, 512 and 1024, or ``NEXUS_BENCH_DR_SIZES``), a
real-shaped database is built as ``backup_restore.py --data real`` builds it (20,000 secrets with three
versions each, sealed with the keyring's master key, and an audit log of signed rows grown to the
size; a database under 80 MiB holds 250 secrets per MiB), and then, as an operator would see it:

1. a reference NEXUS server (``tests/nexus_server``) serves that data directory on 127.0.0.1;
2. ``nexus.secrets.nexus_backup`` backs it up, through ansible-playbook, while it runs (its
   ``compression`` option as ``--compression`` says, default ``deflate``);
3. disaster: the server is stopped and its data directory wiped;
4. ``playbooks/disaster_recovery.yml`` (nexus_dr_hosts, nexus_dr_confirm=true, the reference server's
   start/stop commands as hooks, nexus_dr_install_deps=false) recovers it from the backup directory.

Printed: the backup module's time and the task's wall time, the wall time of the whole DR playbook,
the phases of the DR report (seconds each, RTO, downtime), the time of every module of the run that
reports one (``duration``), so that it shows where a recovery's time goes, and the restore's own
time: ``nexus_restore`` alone, from the same backup into an empty directory (a full pass), with the
backup file dropped from the page cache first, as it is when the recovery starts.

The modules run without isal, as on NEXUS hosts: a directory whose ``isal`` package fails to import
comes first on the modules' PYTHONPATH (the standard library's zlib is used).

The guide's RTO table: < 10 MB backup/restore < 5 s; 10-100 MB < 30 s; 100 MB-1 GB 1-5 min.
Target of this collection: the DR role's RTO for 1 GiB <= the restore's own time + 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / '.cache' / 'collections'), str(REPO / 'benchmarks')]

from backup_restore import KEY_PASSWORD, MIB, PASSWORD, build_data_dir  # noqa: E402
from tests.helpers.ansible import run_module, run_playbook  # noqa: E402
from tests.nexus_server.harness import ADMIN_PASSWORD, ADMIN_USER, free_port  # noqa: E402

CTL = REPO / 'tests' / 'nexus_server' / 'ctl.py'
PLAYBOOK = REPO / 'playbooks' / 'disaster_recovery.yml'
HOST = 'nexus-bench'
NO_ISAL = 'raise ImportError("isal is hidden: NEXUS hosts have none")\n'


def drop_from_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def start_script(host_dir, port):
    """Start the server with NEXUS_KEY_PASSWORD from its environment file, as systemd would."""
    return ('set -a && . %s && set +a && exec %s %s start --workdir %s --port %d --timeout 600'
            % (host_dir / 'environment', sys.executable, CTL, host_dir / 'nexus', port))


def ctl(*args):
    proc = subprocess.run([sys.executable, str(CTL)] + list(args), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit('ctl %s failed: %s' % (args[0], proc.stderr))
    return proc.stdout.strip()


def hidden_isal(root):
    """A directory to put first on PYTHONPATH: ``import isal`` fails there."""
    path = root / 'no-isal'
    (path / 'isal').mkdir(parents=True)
    (path / 'isal' / '__init__.py').write_text(NO_ISAL)
    env = {'PYTHONPATH': os.pathsep.join([str(path)] + [p for p in [os.environ.get('PYTHONPATH')] if p])}
    check = subprocess.run([sys.executable, '-c', 'import isal'], env=dict(os.environ, **env),
                           capture_output=True, check=False)
    if check.returncode == 0:
        raise SystemExit('could not hide isal from the modules')
    return env


def durations(result, host):
    """``[(task name, module duration)]`` of every task of the run whose result reports one."""
    found = []
    for play in result.data.get('plays', []):
        for task in play.get('tasks', []):
            out = task['hosts'].get(host) or {}
            if isinstance(out.get('duration'), (int, float)) and not out.get('skipped'):
                found.append((task['task']['name'], out['duration'], out.get('staged_copy_used')))
    return found


def run_size(size_mib, root, env, compression):
    host_dir = root / ('%d-mib' % size_mib)
    data_dir = host_dir / 'nexus'
    backups = host_dir / 'backups'
    backups.mkdir(parents=True)
    started = time.time()
    # 20,000 secrets take 32 MiB with their versions: smaller databases hold fewer (250 per MiB).
    db, count = build_data_dir(data_dir, size_mib, 'real', secrets=min(20000, size_mib * 250))
    env_file = host_dir / 'environment'
    fd = os.open(str(env_file), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as fh:
        fh.write('NEXUS_KEY_PASSWORD="%s"\n' % KEY_PASSWORD)
    os.sync()
    print('--- %d MiB: nexus.db %.0f MiB (%d secrets, audit log to size) built in %.1f s; load average %.2f'
          % (size_mib, os.path.getsize(str(db)) / MIB, count, time.time() - started, os.getloadavg()[0]),
          flush=True)
    port = free_port()
    subprocess.run(['sh', '-c', start_script(host_dir, port)], check=True, capture_output=True)
    try:
        started = time.time()
        backup_args = {'data_dir': str(data_dir), 'dest': str(backups), 'backup_password': PASSWORD,
                       'compression': compression}
        out = run_module('nexus.secrets.nexus_backup', backup_args, env=env)
        if out.get('failed'):
            raise SystemExit('backup failed: %s' % out.get('msg'))
        print('backup   : module %6.2f s, task (ansible-playbook) %6.2f s; file %.0f MiB'
              % (out['duration'], time.time() - started, out['size'] / MIB), flush=True)
        # The disaster: the server is gone and so is its data directory.
        ctl('stop', '--workdir', str(data_dir))
        shutil.rmtree(str(data_dir))
        os.sync()
        inventory = host_dir / 'inventory.json'
        inventory.write_text(json.dumps({'all': {'hosts': {HOST: {
            'ansible_connection': 'local',
            'ansible_python_interpreter': sys.executable,
            'nexus_dr_data_dir': str(data_dir),
            'nexus_dr_backup_path': str(backups),
            'nexus_dr_url': 'http://127.0.0.1:%d' % port,
            'nexus_dr_environment_file': str(env_file),
            'nexus_dr_stop_command': '%s %s stop --workdir %s' % (sys.executable, CTL, data_dir),
            'nexus_dr_start_command': 'sh -c %s' % shell_quote(start_script(host_dir, port)),
            'nexus_dr_install_deps': False,
            'nexus_dr_owner': '', 'nexus_dr_group': '',
            'nexus_dr_environment_owner': '', 'nexus_dr_environment_group': '',
            'nexus_dr_health_timeout': 600,
            'nexus_dr_report_dir': str(host_dir / 'reports'),
        }}}}))
        started = time.time()
        res = run_playbook(PLAYBOOK, inventory=str(inventory), env=env, timeout=3600, extra_vars={
            'nexus_dr_hosts': HOST, 'nexus_dr_confirm': True,
            'nexus_dr_backup_password': PASSWORD, 'nexus_dr_key_password': KEY_PASSWORD,
            'nexus_dr_api_username': ADMIN_USER, 'nexus_dr_api_password': ADMIN_PASSWORD})
        wall = time.time() - started
        if res.rc:
            raise SystemExit('disaster_recovery.yml failed (rc %d):\n%s\n%s'
                             % (res.rc, res.stdout[-4000:], res.stderr[-2000:]))
        report = json.loads(sorted((host_dir / 'reports').glob('*.json'))[-1].read_text())['hosts'][0]
        print('DR playbook wall time %6.2f s; report: status %s, RTO %.2f s, downtime %.2f s, %s secrets'
              % (wall, report['status'], float(report['rto_seconds']), float(report['downtime_seconds']),
                 report['live_secrets']))
        print('  phases: %s' % ', '.join('%s %.2f s' % (p['name'], float(p['seconds'])) for p in report['phases']))
        for name, seconds, staged in durations(res, HOST):
            print('  module %-70s %6.2f s%s' % (name[:70], seconds,
                                                '' if staged is None else ' (staged_copy_used=%s)' % staged))
        # The restore's own time, for comparison: nexus_restore alone into an empty directory (it decrypts,
        # unpacks and checks the backup itself, as it does without a staged copy), from a cold file as the
        # recovery's was (the backup drops its pages from the cache; the recovery has just read them).
        drop_from_cache(report['backup'])
        started = time.time()
        alone = run_module('nexus.secrets.nexus_restore', {
            'src': report['backup'], 'backup_password': PASSWORD, 'key_password': KEY_PASSWORD,
            'data_dir': str(host_dir / 'restore-alone'), 'pre_restore_backup': False, 'force': True}, env=env)
        if alone.get('failed'):
            raise SystemExit('nexus_restore alone failed: %s' % alone.get('msg'))
        alone_wall = time.time() - started
        print('restore alone (nexus_restore, full pass, cold file): module %6.2f s (validate %.2f s, swap %.2f s), task %6.2f s'
              % (alone['duration'], alone['timings']['validate'], alone['timings']['swap'], alone_wall))
        shutil.rmtree(str(host_dir / 'restore-alone'))
        return {'size_mib': size_mib, 'backup_s': out['duration'], 'dr_wall_s': wall,
                'rto_s': float(report['rto_seconds']), 'phases': report['phases'],
                'restore_alone_s': alone['duration'], 'restore_alone_wall_s': alone_wall}
    finally:
        if (data_dir / 'nexus.pid').exists():
            ctl('stop', '--kill', '--workdir', str(data_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default=os.environ.get('NEXUS_BENCH_DR_SIZES', '8,64,512,1024'),
                        help='sizes of nexus.db in MiB, comma-separated (default: 8,64,512,1024)')
    parser.add_argument('--compression', choices=('deflate', 'store'), default='deflate',
                        help="nexus_backup's compression for the backup the recovery restores (default: deflate)")
    parser.add_argument('--keep', help='build in this directory and keep it (default: a temp dir, removed)')
    opts = parser.parse_args(argv)
    print('%s, %s UTC, %d cpus, load average %s; compression %s'
          % (platform.platform(), time.strftime('%Y-%m-%d %H:%M', time.gmtime()), os.cpu_count(),
             ' '.join('%.2f' % x for x in os.getloadavg()), opts.compression))
    root = Path(opts.keep or tempfile.mkdtemp(prefix='nexus-dr-bench-', dir=os.environ.get('TMPDIR')))
    try:
        env = hidden_isal(root)
        rows = [run_size(int(size), root, env, opts.compression) for size in opts.sizes.split(',') if size.strip()]
        print('--- summary (seconds): size MiB, backup module, DR playbook wall, DR RTO (report), DR restore phase, '
              'restore alone (module), restore alone (task)')
        for row in rows:
            restore = [p for p in row['phases'] if p['name'] == 'restore']
            print('%6d  %7.2f  %7.2f  %7.2f  %7.2f  %7.2f  %7.2f'
                  % (row['size_mib'], row['backup_s'], row['dr_wall_s'], row['rto_s'],
                     float(restore[0]['seconds']) if restore else float('nan'), row['restore_alone_s'],
                     row['restore_alone_wall_s']))
    finally:
        if not opts.keep:
            shutil.rmtree(str(root), ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
