#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_backup
short_description: Take a consistent, encrypted NEXUS backup in nexusctl's format
version_added: 0.1.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Writes C(<dest>/nexus-backup-YYYY-MM-DD-HHMMSS.tar.gz.enc), byte-compatible with
    C(nexusctl backup create) (so C(nexusctl backup restore) and M(nexus.secrets.nexus_restore) both
    read it), plus a C(sha256sum)-compatible sidecar C(<file>.sha256).
  - The database is read inside one SQLite read transaction, so a backup taken while the server runs
    holds every committed transaction, including those still in C(nexus.db-wal) (nexusctl copies
    C(nexus.db) alone and misses them), and never blocks the server. With the server running, SQLite's
    online backup API first copies that snapshot into the private directory in O(dest), which needs
    free space for it. When the WAL is empty (the server stopped cleanly), C(nexus.db) itself holds the
    snapshot and is streamed straight from the file under the read lock, with no copy.
  - One streaming pass with bounded memory (a few tens of MB whatever the database size). The file is
    written under a temporary name in a private C(0700) directory inside O(dest), fsynced and renamed;
    a failure (a full disk included) leaves no partial file under the final name and no temporary
    files.
  - After a successful backup, older backups in O(dest) are pruned according to the C(keep_*) options,
    like C(restic forget). Only files named like nexusctl backups are considered, never the new one;
    each pruned backup's sidecar is removed with it.
extends_documentation_fragment:
  - nexus.secrets.data_dir
  - nexus.secrets.backup_password
  - nexus.secrets.password_policy
  - nexus.secrets.retention
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Writes nothing; reports the path that would be written and the backups that would be pruned.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  backup_password:
    required: true
  dest:
    description:
      - Directory to write the backup into. Created with mode C(0700) if it does not exist.
    type: path
    required: true
  name:
    description:
      - File name of the backup. Default is nexusctl's C(nexus-backup-YYYY-MM-DD-HHMMSS.tar.gz.enc) in
        the managed host's local time (the next free second when that name is taken).
      - A name that already exists fails; a backup never replaces a file.
      - Retention only ever considers files named in that pattern.
    type: str
  compression:
    description:
      - How the archive inside the backup is compressed. Either way it is one ordinary gzip stream, which
        C(nexusctl backup restore), M(nexus.secrets.nexus_restore) and C(gzip -d) read.
      - V(deflate) deflates every 64 KiB block that shrinks and stores the others (the encrypted secret
        values as they are), which gives the smallest file.
      - V(store) stores every block. On a host without the optional Python library C(isal), where the
        standard library's zlib bounds both, a database that is mostly audit log then backs up about four
        times faster and restores faster, for a file about twice as large. Worth it when the backup window
        or the restore time matters more than the space the backups take.
    type: str
    choices: [deflate, store]
    default: deflate
    version_added: 0.5.0
  mode:
    description:
      - Permissions of the backup file and its sidecar, as for M(ansible.builtin.file) - an octal
        string such as V('0640') or a symbolic mode such as V(u=rw,g=r). As in every Ansible module, a
        YAML integer is taken as the number it is (V(640) unquoted is C(01200)), so quote octal modes.
      - Both files are written C(0600) from their first byte and get this mode once complete.
      - O(owner), O(group), the SELinux options and O(attributes) apply to both files as well.
        O(unsafe_writes) has no effect; a backup is always published atomically.
    type: raw
    default: '0600'
notes:
  - The keyring directory must exist; a backup without the keyring could never be decrypted after a
    restore. The archive holds C(nexus.db), C(data/keys) and the C(*.key) files in it, with their
    modes on disk, as nexusctl writes them.
  - The backup file is encrypted; the database inside holds only encrypted secret values, and the
    keyring inside is itself encrypted with the keyring password (E(NEXUS_KEY_PASSWORD)). Keep the
    backup password and the keyring password apart from the backups.
  - One backup runs per O(dest) at a time (an exclusive lock on the directory); a second one fails at
    once with a message saying a backup is already running and RV(busy=true), so a scheduled run never
    overlaps a slow one.
  - An existing file is never replaced. When the default name is taken (a second backup in the same
    second, or another host writing to the same directory), the backup takes the next free second's
    name, which retention still recognises. An explicit O(name) that exists fails before any work.
    The file is published with C(link()) (or C(renameat2(RENAME_NOREPLACE)) where the filesystem has
    no hard links), which never replaces a file.
  - Several hosts sharing one backup directory each need their own O(dest) (the C(nexus.secrets.backup)
    role writes into C(<dest>/<inventory_hostname>)); retention only ever looks at the files directly
    in O(dest).
seealso:
  - module: nexus.secrets.nexus_restore
  - module: nexus.secrets.nexus_backup_info
'''

EXAMPLES = r'''
- name: Nightly backup with a month of dailies and a year of monthlies
  nexus.secrets.nexus_backup:
    dest: /var/backups/nexus
    backup_password: "{{ vault_nexus_backup_password }}"
    keep_daily: 30
    keep_monthly: 12

- name: Backup of a server with a non-default layout, password from the environment
  nexus.secrets.nexus_backup:
    data_dir: /srv/nexus
    db_path: /srv/nexus/db/nexus.db
    dest: /mnt/backups/nexus
    owner: backup
    group: backup
    mode: '0640'
    keep_last: 7
  environment:
    NEXUS_BACKUP_PASSWORD: "{{ vault_nexus_backup_password }}"
  register: backup

- name: Fetch it off the host
  ansible.builtin.fetch:
    src: "{{ backup.path }}"
    dest: backups/
    flat: true
'''

RETURN = r'''
password_findings:
  description: What O(backup_password) lacks under the password policy (never the password itself); empty when it
    complies.
  returned: success
  type: list
  elements: str
  sample: ['shorter than 16 characters']
  version_added: 0.3.0
path:
  description: The backup file (in check mode, the file that would be written).
  returned: always
  type: str
  sample: /var/backups/nexus/nexus-backup-2025-12-04-001500.tar.gz.enc
size:
  description: Size of the backup file in bytes.
  returned: changed
  type: int
  sample: 48213
sha256:
  description: SHA-256 of the backup file, also written to C(<path>.sha256).
  returned: changed
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
members:
  description: The archive members, in archive order.
  returned: changed
  type: list
  elements: dict
  contains:
    name:
      description: Member name (C(nexus.db), C(data/keys), C(data/keys/*.key)).
      type: str
    size:
      description: Size in bytes (0 for the directory).
      type: int
    type:
      description: C(file) or C(dir).
      type: str
    mode:
      description: Permissions recorded in the archive, octal.
      type: str
  sample: [{name: nexus.db, size: 45056, type: file, mode: '0644'}, {name: data/keys, size: 0, type: dir, mode: '0700'}]
secrets:
  description: Number of live (not deleted) secrets in the backed-up database.
  returned: changed
  type: int
  sample: 12
duration:
  description: Seconds the backup took.
  returned: always
  type: float
  sample: 0.84
pruned:
  description: Backups removed by retention (in check mode, those that would be), with their sidecars.
  returned: always
  type: list
  elements: str
  sample: [/var/backups/nexus/nexus-backup-2025-11-01-001500.tar.gz.enc]
busy:
  description:
    - V(true) when no backup was made because another backup into O(dest) was running (the task fails).
      That run is making the backup, so a scheduler can treat this as "skipped", not as an error.
    - V(false) otherwise.
  returned: always, except when an option is invalid
  type: bool
  sample: false
  version_added: 0.3.0
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _backup, _crypto, _layout, _retention
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option
from ansible_collections.nexus.secrets.plugins.module_utils._file_args import (
    apply_file_args, file_args_problem, mode_option,
)
from ansible_collections.nexus.secrets.plugins.module_utils._password_policy import POLICIES, apply_policy


def argument_spec():
    spec = dict(
        data_dir=dict(type='path', default='/var/lib/nexus'),
        db_path=dict(type='path'),
        keys_dir=dict(type='path'),
        dest=dict(type='path', required=True),
        backup_password=password_option('backup_password', required=True),
        name=dict(type='str'),
        compression=dict(type='str', choices=list(_backup.COMPRESSION_LEVELS), default='deflate'),
        mode=mode_option(),
        password_policy=dict(type='str', choices=list(POLICIES), default='warn', no_log=False),
    )
    spec.update(_retention.keep_argument_spec())
    return spec


def retention_rules(module):
    try:
        return _retention.keep_rules(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def plan_prune(dest, new_path, rules):
    """Backups retention would remove once ``new_path`` exists (never ``new_path`` itself)."""
    return _retention.plan_prune(dest, rules, new_path=new_path)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, add_file_common_args=True)
    _crypto.require_crypto(module)
    started = time.time()
    params = module.params
    layout = _layout.Layout(params['data_dir'], params['db_path'], params['keys_dir'])
    db_path, keys_dir = layout.db_path, layout.keys_dir
    dest = params['dest']
    rules = retention_rules(module)
    bad = file_args_problem(params) or empty_password_msg(params, ['backup_password'])
    if bad:
        module.fail_json(msg=bad, busy=False)
    findings = apply_policy(module, 'backup_password', params['backup_password'], params['password_policy'])
    try:
        _backup.check_sources(db_path, keys_dir)
        if os.path.lexists(dest) and not os.path.isdir(dest):
            raise _backup.BackupError('dest %s exists and is not a directory' % dest)
        path = _backup.predict_path(dest, params['name'])
    except _backup.BackupError as exc:
        module.fail_json(msg=str(exc), busy=False)

    if module.check_mode:
        module.exit_json(changed=True, path=path, pruned=plan_prune(dest, path, rules),
                         duration=round(time.time() - started, 3), busy=False, password_findings=findings)

    try:
        result = _backup.create_backup(db_path, keys_dir, dest, params['backup_password'], name=params['name'],
                                       compression=params['compression'])
    except _backup.BackupError as exc:
        module.fail_json(msg=str(exc), duration=round(time.time() - started, 3),
                         busy=isinstance(exc, _backup.BackupBusy))

    apply_file_args(module, [result['path'], result['path'] + _layout.SIDECAR_SUFFIX], True)

    pruned = []
    try:
        for victim in plan_prune(dest, result['path'], rules):
            _backup.remove_backup(victim)
            pruned.append(victim)
    except OSError as exc:
        module.fail_json(msg='the backup %s was written, but pruning old backups failed: %s'
                         % (result['path'], exc.strerror or exc), changed=True, path=result['path'],
                         pruned=pruned, busy=False)

    members = [dict(member, mode='%04o' % member['mode']) for member in result['members']]
    module.exit_json(changed=True, path=result['path'], size=result['size'], sha256=result['sha256'],
                     members=members, secrets=result['secrets'], pruned=pruned,
                     duration=round(time.time() - started, 3), busy=False, password_findings=findings)


if __name__ == '__main__':
    main()
