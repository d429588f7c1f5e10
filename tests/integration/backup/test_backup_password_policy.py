"""The guide's password rule on backups: nexus_backup warns or refuses, nexus_backup_info reports; never echoed."""

from __future__ import annotations

import os

WEAK = 'backup-password'
STRONG = 'Backup-Password-2026!'


def policy_warnings(result):
    return [w for w in result.get('warnings', []) if 'does not meet the password policy' in w]


def test_weak_backup_password_warned_refused_and_reported(ansible_module, nexus_server, tmp_path):
    dest = tmp_path / 'backups'
    args = {'data_dir': str(nexus_server.workdir), 'dest': str(dest)}
    weak = ansible_module('nexus.secrets.nexus_backup', dict(args, backup_password=WEAK))
    assert weak.get('failed') is not True, weak.get('msg')
    assert weak['password_findings'] == ['shorter than 16 characters', 'no upper-case letter', 'no digit']
    assert len(policy_warnings(weak)) == 1 and WEAK not in weak['_run'].stdout + weak['_run'].stderr

    info = ansible_module('nexus.secrets.nexus_backup_info', {'path': str(dest), 'backup_password': WEAK})
    assert info['latest']['valid'] and info['password_findings'] == weak['password_findings']
    assert not policy_warnings(info)  # reported, not warned: reading old backups is no new choice

    refused = ansible_module('nexus.secrets.nexus_backup', dict(args, dest=str(tmp_path / 'refused'),
                                                                backup_password=WEAK, password_policy='fail'))
    assert refused['failed'] and 'nothing was written (password_policy=fail)' in refused['msg']
    assert not os.path.exists(str(tmp_path / 'refused'))

    strong = ansible_module('nexus.secrets.nexus_backup', dict(args, backup_password=STRONG))
    assert strong['password_findings'] == [] and not policy_warnings(strong)
