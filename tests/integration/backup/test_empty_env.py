"""Backup passwords (nexus_backup, nexus_backup_rekey): an empty variable counts as unset, an empty
option is refused by name, and either way nothing is written."""

from __future__ import annotations

import os

from tests.helpers.ansible import run_module

PASSWORD = 'empty-env-backup-password'


def test_backup_empty_variable_is_unset_and_empty_option_refused(nexus_server, tmp_path):
    dest = tmp_path / 'b'
    args = {'data_dir': str(nexus_server.workdir), 'dest': str(dest)}
    out = run_module('nexus.secrets.nexus_backup', args, environment={'NEXUS_BACKUP_PASSWORD': ''})
    assert out.get('failed') and 'missing required arguments: backup_password' in out['msg'], out
    out = run_module('nexus.secrets.nexus_backup', dict(args, backup_password=''),
                     environment={'NEXUS_BACKUP_PASSWORD': PASSWORD})
    assert out.get('failed') and out['msg'].startswith('backup_password must not be empty'), out
    assert not dest.exists()
    out = run_module('nexus.secrets.nexus_backup', args, environment={'NEXUS_BACKUP_PASSWORD': PASSWORD})
    assert out['changed'] and not out.get('failed'), out


def test_rekey_empty_variables_are_unset_and_empty_options_refused(tmp_path):
    backup = tmp_path / 'nexus-backup-2026-12-01-020000.tar.gz.enc'
    backup.write_bytes(b'not touched')
    module = 'nexus.secrets.nexus_backup_rekey'
    out = run_module(module, {'path': str(tmp_path)},
                     environment={'NEXUS_BACKUP_PASSWORD': '', 'NEXUS_NEW_BACKUP_PASSWORD': ''})
    assert out.get('failed') and out['msg'].startswith('set backup_password (or NEXUS_BACKUP_PASSWORD)'), out
    out = run_module(module, {'path': str(tmp_path), 'new_backup_password': ''},
                     environment={'NEXUS_BACKUP_PASSWORD': PASSWORD, 'NEXUS_NEW_BACKUP_PASSWORD': 'x' * 20})
    assert out.get('failed') and out['msg'].startswith('new_backup_password must not be empty'), out
    assert backup.read_bytes() == b'not touched' and sorted(os.listdir(str(tmp_path))) == [backup.name]
