#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_backup_info
short_description: List NEXUS backups and verify them without restoring
version_added: 0.1.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Lists the encrypted NEXUS backups (nexusctl format) in a directory, newest first, with the time
    in their name, size, modification time and the state of their C(sha256sum) sidecar.
  - With O(backup_password), verifies each one exactly as M(nexus.secrets.nexus_restore) would
    before restoring it, without restoring it. It decrypts and unpacks into a private temporary
    directory (removed afterwards). Then it checks the AES-GCM tag, the archive members, that the
    database holds NEXUS's schema and nothing else, SQLite C(PRAGMA integrity_check) (see
    O(integrity_check)), counts the live secrets, and with O(key_password) checks that the keyring
    unlocks. This is the backup guide's "test restores regularly", automated.
  - A backup that fails any check, in any way, is listed with RV(backups[].valid=false) and its
    RV(backups[].error); the other backups are still listed and verified.
  - Never changes anything.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Runs the same way in check mode; it never changes anything.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - A backup file, or a directory whose files matching O(pattern) are listed.
    type: path
    required: true
  pattern:
    description:
      - Shell-style pattern of the backup file names in a directory. Sidecars (C(*.sha256)) and
        symbolic links are never listed.
    type: str
    default: nexus-backup-*.tar.gz.enc
  backup_password:
    description:
      - The password the backups were encrypted with. Without it, backups are only listed.
      - If not set, the value of the E(NEXUS_BACKUP_PASSWORD) environment variable is used (an
        empty value counts as unset). An empty O(backup_password) with O(verify=true) fails.
    type: str
  key_password:
    description:
      - When verifying, also check that each backup's keyring unlocks with this password (the
        E(NEXUS_KEY_PASSWORD) the server will be started with). A backup whose keyring does not
        unlock is reported as not valid.
      - If not set, the value of the E(NEXUS_KEY_PASSWORD) environment variable is used (an empty
        value counts as unset).
    type: str
  verify:
    description:
      - Whether to verify the backups. Defaults to V(true) when O(backup_password) is known, V(false)
        otherwise; V(true) without a password is an error.
    type: bool
  before:
    description:
      - List (and verify) only the backups taken at or before this time, so that RV(latest) is the
        newest valid backup from before an incident.
      - An ISO 8601 date, or date and time (C(2025-12-04T00:15:00)), in the host's local time like
        the times in the backup names, unless it names an offset (C(Z), C(+02:00)).
      - A backup's time is the one in its name, else its modification time.
    type: str
    version_added: 0.3.0
  integrity_check:
    description:
      - V(full) runs C(PRAGMA integrity_check), which also compares every index with its table. It is the
        check that proves the database was sound when it was backed up. Run it where nobody waits (after
        each backup, in drills); M(nexus.secrets.nexus_restore) runs V(quick) by default.
      - V(quick) runs C(PRAGMA quick_check), the restore's default.
    type: str
    choices: [quick, full]
    default: full
    version_added: 0.3.0
  checksum:
    description:
      - Whether to read each backup whole to compare it with its C(sha256sum) sidecar (RV(backups[].sidecar)).
      - V(false) only checks that the sidecar is a well-formed line naming the file (V(unchecked)); listing a
        directory of large backups then reads none of them. Verifying (O(verify)) still authenticates every
        byte of each backup it checks.
    type: bool
    default: true
    version_added: 0.4.0
  tmp_dir:
    description:
      - Where the private staging directory is made while verifying; it needs room for the
        largest unpacked backup. Defaults to the system's temporary directory.
    type: path
seealso:
  - module: nexus.secrets.nexus_backup
  - module: nexus.secrets.nexus_restore
'''

EXAMPLES = r'''
- name: List the backups
  nexus.secrets.nexus_backup_info:
    path: /var/backups/nexus
  register: listing

- name: Verify every backup, keyring included, and fail when the newest is not restorable
  nexus.secrets.nexus_backup_info:
    path: /var/backups/nexus
    backup_password: "{{ vault_nexus_backup_password }}"
    key_password: "{{ vault_nexus_key_password }}"
  register: checked

- name: Restore drill alarm
  ansible.builtin.assert:
    that:
      - checked.backups | length > 0
      - checked.backups[0].valid
      - checked.backups[0].sidecar == 'ok'
    fail_msg: "The newest NEXUS backup is not restorable: {{ checked.backups[0].error | default('none found') }}"
'''

RETURN = r'''
password_findings:
  description: What O(backup_password) lacks under the nexusctl guide's password rule (16 characters or more, upper
    case, lower case, digits, symbols), never the password itself; empty when it complies or is not given.
    Reported only; it never fails the task.
  returned: always
  type: list
  elements: str
  sample: ['no symbol']
  version_added: 0.3.0
backups:
  description: The backups found, newest first (by the time in their name, else modification time).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Absolute path of the backup file.
      type: str
    name:
      description: File name.
      type: str
    time:
      description: The local time in the nexusctl file name, ISO 8601; null when the name holds none.
      type: str
    mtime:
      description: Modification time (local), ISO 8601.
      type: str
    size:
      description: Size in bytes.
      type: int
    sidecar:
      description: The C(<name>.sha256) sidecar agrees with the file (V(ok)), does not (V(mismatch)),
        or does not exist (V(missing)); V(unchecked) for a well-formed sidecar with O(checksum=false).
      type: str
    valid:
      description: Whether the backup passed every check. Only when verifying.
      type: bool
    error:
      description: Why it is not valid (a hostile or damaged file included); null when it is. Only when verifying.
      type: str
    members:
      description: Archive members (name, size, type, mode). Only when verifying.
      type: list
      elements: dict
    secrets:
      description: Live (not deleted) secrets in the backup's database. Only when verifying.
      type: int
    integrity:
      description: Result of the database check (V(ok)). Only when verifying.
      type: str
    integrity_check:
      description: Which database check ran, V(full) or V(quick). Only when verifying.
      type: str
    keyring_verified:
      description: Whether the keyring unlocked with O(key_password). Only when verifying.
      type: bool
  sample:
    - path: /var/backups/nexus/nexus-backup-2025-12-04-001500.tar.gz.enc
      name: nexus-backup-2025-12-04-001500.tar.gz.enc
      time: '2025-12-04T00:15:00'
      mtime: '2025-12-04T00:15:02'
      size: 48211
      sidecar: ok
      valid: true
      error: null
      members: [{name: nexus.db, size: 45056, type: file, mode: '0600'}]
      secrets: 12
      integrity: ok
      keyring_verified: true
latest:
  description: The newest valid backup when verifying, else the newest backup; null when none.
    Same keys as an element of RV(backups).
  returned: always
  type: dict
verified:
  description: Whether the backups were verified.
  returned: always
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _backup_info, _crypto, _layout
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option
from ansible_collections.nexus.secrets.plugins.module_utils._password_policy import weaknesses


def argument_spec():
    return dict(
        path=dict(type='path', required=True),
        pattern=dict(type='str', default=_layout.BACKUP_GLOB),
        backup_password=password_option('backup_password'),
        key_password=password_option('key_password'),
        verify=dict(type='bool'),
        tmp_dir=dict(type='path'),
        before=dict(type='str'),
        integrity_check=dict(type='str', choices=['quick', 'full'], default='full'),
        checksum=dict(type='bool', default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    check = params['verify']
    if check is None:
        check = bool(params['backup_password'])
    if check:
        empty = empty_password_msg(params, ['backup_password'])
        if empty:
            module.fail_json(msg=empty)
    if check and not params['backup_password']:
        module.fail_json(msg='verify=true needs backup_password (or NEXUS_BACKUP_PASSWORD)')
    _crypto.require_crypto(module, needed=check)
    try:
        before = _backup_info.parse_before(params['before']) if params['before'] else None
        backups, latest = _backup_info.inventory(params['path'], params['pattern'], params['backup_password'],
                                                 params['key_password'] or None, check, params['tmp_dir'],
                                                 before=before, depth=params['integrity_check'],
                                                 checksum=params['checksum'])
    except _backup_info.InfoError as exc:
        module.fail_json(msg=str(exc))
    findings = weaknesses(params['backup_password']) if params['backup_password'] else []
    module.exit_json(changed=False, backups=backups, latest=latest, verified=check, password_findings=findings)


if __name__ == '__main__':
    main()
