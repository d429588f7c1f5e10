#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_backup_rekey
short_description: Re-encrypt NEXUS backup files under a new backup password
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Rotates the backup password of existing backups (nexusctl's format), one file at a time, as the
    nexusctl guide asks ("unique password for each backup, or rotate regularly").
  - Each file is re-encrypted into a private temp file beside it, read back with O(new_backup_password)
    and compared with the original's plaintext, and only then renamed over the original; its
    C(sha256sum) sidecar is then rewritten. At every moment each backup opens with the old or the new
    password, never with neither.
  - Resumable. Files that already open with O(new_backup_password) are left alone (a stale sidecar,
    left by a run killed between the rename and the sidecar, is rewritten), temp files of killed runs
    are removed, and a second run reports no change.
  - Holds the same lock on the directory as M(nexus.secrets.nexus_backup), so it never runs beside a
    backup into that directory.
  - Copies elsewhere (the controller, object storage) still hold the old encryption; copy the rotated
    files there again.
requirements:
  - cryptography >= 44, or an older cryptography together with argon2-cffi (for Argon2id)
extends_documentation_fragment:
  - nexus.secrets.password_policy
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Finds which password each file opens with and reports what would be re-encrypted; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - A backup file, or a directory whose files matching O(pattern) are all rotated.
    type: path
    required: true
  pattern:
    description:
      - Shell pattern of the backup file names in a directory O(path).
    type: str
    default: nexus-backup-*.tar.gz.enc
  backup_password:
    description:
      - The current backup password.
      - If not set, the value of the E(NEXUS_BACKUP_PASSWORD) environment variable is used (an empty
        variable counts as unset). An empty O(backup_password) fails.
    type: str
  new_backup_password:
    description:
      - The password the backups are encrypted with afterwards. It must differ from O(backup_password).
      - If not set, the value of the E(NEXUS_NEW_BACKUP_PASSWORD) environment variable is used (an empty
        variable counts as unset). An empty O(new_backup_password) fails.
    type: str
'''

EXAMPLES = r'''
- name: Rotate the backup password of every backup of this host
  nexus.secrets.nexus_backup_rekey:
    path: /var/backups/nexus/{{ inventory_hostname }}
    backup_password: "{{ vault_old_backup_password }}"
    new_backup_password: "{{ vault_backup_password }}"
    password_policy: fail
'''

RETURN = r'''
rotated:
  description: The files re-encrypted by this run (in check mode, those that would be).
  returned: always
  type: list
  elements: str
  sample: ['/var/backups/nexus/nexus-backup-2026-12-01-020000.tar.gz.enc']
already:
  description: The files that already open with O(new_backup_password).
  returned: always
  type: list
  elements: str
sidecars_fixed:
  description: Sidecars that no longer matched their (already rotated) file and were rewritten.
  returned: always
  type: list
  elements: str
failures:
  description: The files that open with neither password or could not be rewritten, each left as it was.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    reason:
      description: Why it was not rotated.
      type: str
removed_leftovers:
  description: Temp files of an earlier, killed run that were removed.
  returned: always
  type: list
  elements: str
password_findings:
  description: What O(new_backup_password) lacks under the password policy, never the password itself.
  returned: always
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _rekey_backups
from ansible_collections.nexus.secrets.plugins.module_utils._backup import BackupError, _hold_dest
from ansible_collections.nexus.secrets.plugins.module_utils._backup_info import InfoError, backup_files
from ansible_collections.nexus.secrets.plugins.module_utils._crypto import require_crypto
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option
from ansible_collections.nexus.secrets.plugins.module_utils._layout import BACKUP_GLOB
from ansible_collections.nexus.secrets.plugins.module_utils._password_policy import POLICIES, apply_policy


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            pattern=dict(type='str', default=BACKUP_GLOB),
            backup_password=password_option('backup_password'),
            new_backup_password=password_option('new_backup_password'),
            password_policy=dict(type='str', choices=list(POLICIES), default='warn', no_log=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    old, new = params['backup_password'], params['new_backup_password']
    empty = empty_password_msg(params, ['backup_password', 'new_backup_password'])
    if empty:
        module.fail_json(msg=empty)
    if not old or not new:
        module.fail_json(msg='set backup_password (or NEXUS_BACKUP_PASSWORD) and new_backup_password '
                             '(or NEXUS_NEW_BACKUP_PASSWORD)')
    if old == new:
        module.fail_json(msg='new_backup_password is the current backup_password; nothing to rotate')
    require_crypto(module)
    findings = apply_policy(module, 'new_backup_password', new, params['password_policy'])
    try:
        files = sorted(backup_files(params['path'], params['pattern']))
    except InfoError as exc:
        module.fail_json(msg=str(exc))
    directory = params['path'] if os.path.isdir(params['path']) else os.path.dirname(os.path.abspath(params['path']))

    result = dict(rotated=[], already=[], sidecars_fixed=[], failures=[], removed_leftovers=[],
                  password_findings=findings)
    lock = None
    if not module.check_mode:
        try:
            lock = _hold_dest(directory)
        except BackupError as exc:
            module.fail_json(msg=str(exc), busy=True, **result)
    try:
        if not module.check_mode:
            result['removed_leftovers'] = _rekey_backups.remove_leftovers(directory)
        for path in files:
            try:
                which = _rekey_backups.which_password(path, old, new)
                if which == _rekey_backups.NEITHER:
                    raise _rekey_backups.RekeyError('%s opens with neither password (or is not a backup); '
                                                    'left as it was' % path)
                if which == _rekey_backups.NEW:
                    result['already'].append(path)
                    if not module.check_mode and _rekey_backups.fix_sidecar(path):
                        result['sidecars_fixed'].append(path)
                    continue
                if not module.check_mode:
                    _rekey_backups.rekey_file(path, old, new)
                result['rotated'].append(path)
            except _rekey_backups.RekeyError as exc:
                result['failures'].append({'path': path, 'reason': str(exc)})
    finally:
        if lock is not None:
            os.close(lock)
    changed = bool(result['rotated'] or result['sidecars_fixed'] or result['removed_leftovers'])
    if result['failures']:
        module.fail_json(msg='%d of %d backups were not rotated: %s' % (
            len(result['failures']), len(files), '; '.join(f['reason'] for f in result['failures'][:3])),
            changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
