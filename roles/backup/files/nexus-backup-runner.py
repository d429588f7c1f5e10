# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take one NEXUS backup on this host, without a controller (installed by the nexus.secrets.backup role).

Usage: python3 nexus-backup-runner.py CONFIG.json

Runs the same core as the nexus.secrets.nexus_backup module, from a copy of the collection's
module_utils next to this script: backup (never replacing a file, one run per directory at a
time), retention, verification, then Prometheus textfile metrics. CONFIG.json holds no secret.
The backup password is read from the systemd credential ``nexus-backup-password``
($CREDENTIALS_DIRECTORY, from LoadCredential=) or else from ``password_file`` in the config, a
root-only file; it is never taken from argv or the environment.

Exit status: 0 backed up, 75 (EX_TEMPFAIL) another backup was running, 1 failed, 2 bad usage.
One JSON line on stdout (the journal) says what happened; it holds no secret.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# pylint: disable=wrong-import-position
from ansible_collections.nexus.secrets.plugins.module_utils import _backup, _backup_info, _crypto, _layout, _metrics, _retention

CREDENTIAL = 'nexus-backup-password'
EX_TEMPFAIL = 75
MAX_PASSWORD_BYTES = 64 * 1024


class RunnerError(Exception):
    """A user-facing reason why the run failed."""


def _read_secret_file(path, private):
    """The file's text without its trailing newline; ``private`` files must be 0600-ish and root's."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        raise RunnerError('cannot read the backup password from %s: %s' % (path, exc.strerror or exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RunnerError('%s is not a regular file' % path)
        if private and (st.st_mode & 0o077 or st.st_uid != os.getuid()):
            raise RunnerError('%s must be owned by the user running the backup and not readable by group or '
                              'others (mode 0600)' % path)
        data = os.read(fd, MAX_PASSWORD_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PASSWORD_BYTES:
        raise RunnerError('%s is too large to hold a password' % path)
    text = data.decode('utf-8')
    if text.endswith('\n'):
        text = text[:-1]
    if not text:
        raise RunnerError('the backup password in %s is empty' % path)
    return text


def read_password(config, environ=None):
    environ = os.environ if environ is None else environ
    credentials = environ.get('CREDENTIALS_DIRECTORY')
    if credentials and os.path.exists(os.path.join(credentials, CREDENTIAL)):
        return _read_secret_file(os.path.join(credentials, CREDENTIAL), private=False)
    if config.get('password_file'):
        return _read_secret_file(config['password_file'], private=True)
    raise RunnerError('no backup password: run under systemd with LoadCredential=%s:FILE, or set password_file '
                      'in the config' % CREDENTIAL)


def _ids(config):
    uid = gid = -1
    if config.get('owner'):
        owner = config['owner']
        uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
    if config.get('group'):
        group = config['group']
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    return uid, gid


def run(config, environ=None):
    """Back up as ``config`` says; return ``(exit status, report dict)``."""
    started = time.time()
    report = {'status': 'failed', 'path': None, 'pruned': [], 'error': None}
    figures = {}
    try:
        missing = _crypto.missing_dependency()
        if missing:
            raise RunnerError('the Python library %s is missing on this host' % missing[0])
        password = read_password(config, environ)
        data_dir = config.get('data_dir') or '/var/lib/nexus'
        layout = _layout.Layout(data_dir, config.get('db_path'), config.get('keys_dir'))
        dest = config['dest']
        uid, gid = _ids(config)
        compression = config.get('compression') or 'deflate'
        if compression not in _backup.COMPRESSION_LEVELS:
            raise RunnerError('compression must be one of %s, not %r' % (', '.join(_backup.COMPRESSION_LEVELS), compression))
        result = _backup.create_backup(layout.db_path, layout.keys_dir, dest, password,
                                       mode=int(str(config.get('mode', '0600')), 8), compression=compression)
        report['path'] = result['path']
        figures.update(size=result['size'], secrets=result['secrets'])
        if uid != -1 or gid != -1:
            for target in (result['path'], result['path'] + _layout.SIDECAR_SUFFIX):
                os.lchown(target, uid, gid)
        rules = dict((key, int(config[key])) for key in _retention.KEEP_RULES if config.get(key) not in (None, ''))
        for victim in _retention.plan_prune(dest, rules, new_path=result['path']):
            _backup.remove_backup(victim)
            report['pruned'].append(victim)
        if config.get('verify', True):
            checked = _backup_info.verify(result['path'], password)
            figures['verified'] = checked['valid']
            if not checked['valid']:
                raise RunnerError('the new backup %s does not validate: %s' % (result['path'], checked['error']))
        report['status'] = 'ok'
    except _backup.BackupBusy as exc:
        report.update(status='busy', error=str(exc))
    except (_backup.BackupError, _backup_info.InfoError, RunnerError, KeyError, ValueError) as exc:
        report['error'] = str(exc)
    except (IOError, OSError) as exc:
        report['error'] = '%s: %s' % (getattr(exc, 'filename', None) or 'I/O error', exc.strerror or exc)
    figures['duration'] = round(time.time() - started, 3)
    report.update(figures)
    if config.get('metrics_dir'):
        try:
            report['metrics'] = _metrics.write_metrics(config['metrics_dir'], report['status'], **figures)[0]
        except (IOError, OSError) as exc:
            report['metrics_error'] = 'cannot write metrics in %s: %s' % (config['metrics_dir'], exc.strerror or exc)
    code = {'ok': 0, 'busy': EX_TEMPFAIL}.get(report['status'], 1)
    if code == 0 and report.get('metrics_error'):
        code = 1
    return code, report


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: %s CONFIG.json\n' % os.path.basename(argv[0]))
        return 2
    try:
        with open(argv[1]) as fh:
            config = json.load(fh)
    except (IOError, OSError, ValueError) as exc:
        sys.stderr.write('cannot read the config %s: %s\n' % (argv[1], exc))
        return 2
    code, report = run(config)
    sys.stdout.write(json.dumps(report, sort_keys=True) + '\n')
    return code


if __name__ == '__main__':
    sys.exit(main(sys.argv))
