#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_keyring_rotate
short_description: Change the password (E(NEXUS_KEY_PASSWORD)) that protects a NEXUS keyring
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Re-wraps the four key files of a stopped NEXUS server (C(master.key), C(signing.key),
    C(verify.key), C(age.key)) under O(new_key_password). The keys themselves do not change, so
    every secret stays readable; only the password that unlocks them does.
  - The new files get one fresh salt (shared by all four, as NEXUS writes them) and a fresh nonce
    each, in NEXUS's format (hex of salt, nonce and AES-256-GCM ciphertext; Argon2id key).
  - All four files change or none. The new ones are written into a fresh sibling directory of the
    keys directory (C(.nexus-rekey-*), mode C(0700), files C(0600) from their first byte, same owner
    as before), made durable, read back and decrypted; then one C(renameat2) call with C(RENAME_EXCHANGE) swaps
    the two directories, and the old files are removed. A run that is killed leaves the complete
    old or the complete new keyring, never a mix; the next run removes the C(.nexus-rekey-*)
    directory it may have left.
  - Refuses, changing nothing, while any process holds the database or a key file (see
    M(nexus.secrets.nexus_datadir_holders)), unless O(force=true). NEXUS reads the keyring only at
    start-up; a server started with the wrong password replaces the keyring and every secret is lost.
  - Idempotent. When the keyring already opens with O(new_key_password) (and not with
    O(key_password)), nothing is changed.
  - The data directory belongs to the NEXUS account. Below O(data_dir) nothing is followed; a
    symbolic link in place of a directory or key file is refused.
extends_documentation_fragment:
  - nexus.secrets.data_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Checks the servers holding the files and that O(key_password) unlocks the keyring, and
      reports whether the password would change. Writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Linux only (C(renameat2) with C(RENAME_EXCHANGE); a filesystem without it is refused).
options:
  key_password:
    description:
      - The current keyring password (E(NEXUS_KEY_PASSWORD) of the server).
      - If not set, the value of the E(NEXUS_KEY_PASSWORD) environment variable is used; if that is
        not set either (an empty value counts as unset), NEXUS's default C(changeme-in-production).
      - When it does not unlock the keyring (and O(new_key_password) does not either), the module
        fails and changes nothing.
    type: str
  new_key_password:
    description:
      - The new keyring password. One line, not empty.
      - Start the server with it afterwards (C(NEXUS_KEY_PASSWORD) in its environment file); a
        server started with the old one replaces the keyring.
    type: str
    required: true
  force:
    description:
      - Rotate even though a process holds the data directory's files. What was overridden is
        reported as a warning and returned in RV(overridden).
      - A running server keeps the keys it loaded and needs the new password at its next start.
    type: bool
    default: false
notes:
  - Backups taken before the rotation hold the keyring wrapped with the old password. Restore them
    with the old O(key_password) (M(nexus.secrets.nexus_restore)), or rotate again after restoring.
  - Only one rotation or restore runs at a time per parent directory of O(data_dir).
  - The keys directory must hold the four key files and nothing else.
seealso:
  - module: nexus.secrets.nexus_datadir_holders
  - module: nexus.secrets.nexus_restore
'''

EXAMPLES = r'''
- name: Rotate the keyring password of a stopped server
  nexus.secrets.nexus_keyring_rotate:
    data_dir: /var/lib/nexus
    key_password: "{{ vault_nexus_key_password_old }}"
    new_key_password: "{{ vault_nexus_key_password }}"

- name: Only check that the old password unlocks the keyring
  nexus.secrets.nexus_keyring_rotate:
    key_password: "{{ vault_nexus_key_password_old }}"
    new_key_password: "{{ vault_nexus_key_password }}"
  check_mode: true
'''

RETURN = r'''
keys_dir:
  description: The keyring directory.
  returned: always
  type: str
  sample: /var/lib/nexus/data/keys
state:
  description: C(rotated) (or, in check mode, would be), or C(already) when the keyring already
    opens with O(new_key_password).
  returned: success
  type: str
  sample: rotated
removed:
  description: Leftovers of an interrupted earlier rotation that were removed (C(.nexus-rekey-*)).
  returned: always
  type: list
  elements: str
  sample: []
holders:
  description: Processes found holding the data directory's files (see M(nexus.secrets.nexus_datadir_holders)).
  returned: always
  type: list
  elements: dict
  sample: []
overridden:
  description: What O(force=true) overrode; empty when nothing was.
  returned: always
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto, _keyring_rotation, _layout
from ansible_collections.nexus.secrets.plugins.module_utils._env import password_option


def argument_spec():
    return dict(
        data_dir=dict(type='path', default='/var/lib/nexus'),
        db_path=dict(type='path'),
        keys_dir=dict(type='path'),
        key_password=password_option('key_password'),
        new_key_password=dict(type='str', no_log=True, required=True),
        force=dict(type='bool', default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    _crypto.require_crypto(module)
    params = module.params
    layout = _layout.Layout(params['data_dir'], params['db_path'], params['keys_dir'])
    try:
        result = _keyring_rotation.rotate(layout, params['key_password'] or None, params['new_key_password'],
                                          force=params['force'], check_mode=module.check_mode)
    except _keyring_rotation.RekeyFailed as exc:
        module.fail_json(msg=str(exc), changed=False, keys_dir=layout.keys_dir, holders=exc.holders)
    for warning in result.pop('warnings'):
        module.warn(warning)
    if result['state'] == 'already':
        result['msg'] = 'the keyring in %s already opens with new_key_password' % layout.keys_dir
    else:
        verb = 'would rotate' if module.check_mode else 'rotated'
        result['msg'] = '%s the keyring password of %s' % (verb, layout.keys_dir)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
