"""File options like every other module: nexus_backup and nexus_backup_metrics take ansible-core's
common file arguments (symbolic and octal modes, numeric owner/group, check mode), applied after the
atomic write; a YAML integer mode means what it means to ansible.builtin.file."""

from __future__ import annotations

import os
import stat

import pytest

from tests.helpers.ansible import run_module

BACKUP = 'nexus.secrets.nexus_backup'
METRICS = 'nexus.secrets.nexus_backup_metrics'
PASSWORD = 'file-options-backup-password'


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def backup_args(server, dest, **extra):
    args = {'data_dir': str(server.workdir), 'dest': str(dest), 'backup_password': PASSWORD}
    args.update(extra)
    return args


def test_backup_takes_symbolic_modes_and_numeric_ids(nexus_server, tmp_path):
    dest = tmp_path / 'b'
    out = run_module(BACKUP, backup_args(nexus_server, dest, mode='u=rw,g=r', owner=str(os.getuid()),
                                         group=str(os.getgid())))
    assert out['changed'] and not out.get('failed'), out
    for path in (out['path'], out['path'] + '.sha256'):
        info = os.lstat(path)
        assert stat.S_IMODE(info.st_mode) == 0o640, path
        assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    # An octal string, and the default: 0600 when the task sets no mode.
    out = run_module(BACKUP, backup_args(nexus_server, dest, mode='0604', name='octal.tar.gz.enc'))
    assert mode_of(out['path']) == mode_of(out['path'] + '.sha256') == 0o604, out
    out = run_module(BACKUP, backup_args(nexus_server, dest, name='default.tar.gz.enc'))
    assert mode_of(out['path']) == mode_of(out['path'] + '.sha256') == 0o600, out


def test_a_yaml_integer_mode_means_what_it_means_to_ansible_builtin_file(nexus_server, tmp_path):
    reference = tmp_path / 'reference'
    reference.write_text('x')
    ran = run_module('ansible.builtin.file', {'path': str(reference), 'mode': 640})
    assert not ran.get('failed'), ran
    out = run_module(BACKUP, backup_args(nexus_server, tmp_path / 'b', mode=640))
    assert not out.get('failed'), out
    # 640 decimal is 01200: surprising, documented, and the same as every other module.
    assert mode_of(out['path']) == mode_of(reference) == 0o1200


@pytest.mark.parametrize('extra,message', [
    ({'mode': 'u=rwq'}, 'mode must be an octal number'),
    ({'mode': '0o77777'}, 'mode must be between 0000 and 07777'),
    ({'owner': 'no-such-user-nexus'}, "owner 'no-such-user-nexus' does not exist"),
])
def test_check_mode_predicts_and_refuses_bad_file_options(nexus_server, tmp_path, extra, message):
    dest = tmp_path / 'b'
    planned = run_module(BACKUP, backup_args(nexus_server, dest, mode='g+r'), check=True)
    assert planned['changed'] and not planned.get('failed') and not dest.exists(), planned
    refused = run_module(BACKUP, backup_args(nexus_server, dest, **extra), check=True)
    assert refused.get('failed') and message in refused['msg'], refused
    refused = run_module(BACKUP, backup_args(nexus_server, dest, **extra))
    assert refused.get('failed') and message in refused['msg'] and not dest.exists(), refused


def test_metrics_file_options(tmp_path):
    args = {'path': str(tmp_path), 'status': 'ok', 'size': 10, 'secrets': 1}
    prom = tmp_path / 'nexus_backup.prom'
    planned = run_module(METRICS, dict(args, mode='u=rw,go=r'), check=True)
    assert planned['changed'] and not prom.exists(), planned
    out = run_module(METRICS, dict(args, mode='u=rw,g=r,o=', group=str(os.getgid())))
    assert out['changed'] and mode_of(prom) == 0o640 and prom.stat().st_gid == os.getgid(), out
    out = run_module(METRICS, args)
    assert mode_of(prom) == 0o644, out  # the default: node_exporter must read it
    refused = run_module(METRICS, dict(args, mode='a=rwz'))
    assert refused.get('failed') and 'mode must be an octal number' in refused['msg'], refused
