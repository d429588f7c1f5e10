#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_export
short_description: Export the secrets of a NEXUS server to a file in nexusctl's format
version_added: 0.1.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Reads every secret (or those under O(prefix)) over the REST API, with O(workers) parallel
    requests on keep-alive connections, and writes them to O(dest) in the JSON format of
    C(nexusctl export), so C(nexusctl import) and M(nexus.secrets.nexus_import) can read it.
  - With O(export_password) the file is written in nexusctl's encrypted envelope (Argon2id +
    AES-256-GCM, the format of its backup files) instead, and the plaintext never touches disk.
  - The file is replaced atomically. When O(dest) already holds the same secrets (the
    C(exported_at) time stamp is ignored; an encrypted O(dest) is decrypted to compare), it is
    left untouched and the task reports no change.
  - Secrets the server lists but cannot return (paths its router cannot reach, see the notes, or
    secrets it fails to decrypt) are reported in RV(unreadable), never dropped silently.
requirements:
  - requests
  - cryptography >= 44, or cryptography with argon2-cffi (only with O(export_password))
extends_documentation_fragment:
  - nexus.secrets.connection
  - nexus.secrets.password_policy
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the server and O(dest) and reports whether the file would change; writes nothing.
  diff_mode:
    support: full
    details: Shows the secret paths added, removed and changed compared with O(dest), never values; and the
      changes of O(mode), O(owner) and O(group) of an existing O(dest).
  platform:
    platforms: posix
options:
  dest:
    description:
      - The export file to write. Its directory must exist.
    type: path
    required: true
  prefix:
    description:
      - Export only secrets whose path starts with this string, compared literally and
        case-sensitively (the server's own prefix filter is only used to narrow the listing).
    type: str
    default: ''
  workers:
    description:
      - How many secrets are read in parallel.
    type: int
    default: 8
  export_password:
    description:
      - Encrypt the file with this password (nexusctl's envelope format).
      - If not set, the value of the E(NEXUS_EXPORT_PASSWORD) environment variable is used (an empty
        variable counts as unset); if that is not set either, the file is plaintext JSON.
      - An empty O(export_password) fails, changing nothing, rather than write the secrets in plaintext.
    type: str
  mode:
    description:
      - Permissions of O(dest), as for M(ansible.builtin.file) - an octal string such as V('0640') or a
        symbolic mode such as V(u=rw,g=r). As in every Ansible module, a YAML integer is taken as the
        number it is (V(640) unquoted is C(01200)), so quote octal modes.
      - The file is written C(0600) from its first byte and gets this mode once complete; an existing
        O(dest) that keeps its content gets it too.
      - O(unsafe_writes) has no effect; the file is always replaced atomically.
    type: raw
    default: '0600'
notes:
  - Paths that end in C(/versions), start or end with C(/), or contain C(//), C(.) or C(..) segments
    can be created on a NEXUS server but never read back over its API; they land in RV(unreadable).
  - The C(metadata) key is omitted for secrets without metadata, as nexusctl does.
seealso:
  - module: nexus.secrets.nexus_import
'''

EXAMPLES = r'''
- name: Export every secret to an encrypted file
  nexus.secrets.nexus_export:
    url: https://nexus.example.com:9000
    token: "{{ nexus_token }}"
    dest: /var/backups/nexus/secrets.json.enc
    export_password: "{{ export_password }}"

- name: Export the prod secrets in nexusctl's plaintext format
  nexus.secrets.nexus_export:
    username: admin
    password: "{{ nexus_admin_password }}"
    dest: /root/prod-secrets.json
    prefix: prod/
  register: exported

- name: Fail when a secret could not be read
  ansible.builtin.assert:
    that: exported.unreadable | length == 0
    fail_msg: "{{ exported.unreadable }}"
'''

RETURN = r'''
password_findings:
  description: What O(export_password) lacks under the password policy (never the password itself); empty when it
    complies or no password is set.
  returned: always
  type: list
  elements: str
  sample: ['shorter than 16 characters', 'no symbol']
path:
  description: The absolute path of the export file.
  returned: always
  type: str
  sample: /root/prod-secrets.json
count:
  description: How many secrets the file holds.
  returned: always
  type: int
  sample: 12
unreadable:
  description: Secrets the server lists but would not return, with the reason. Not in the file.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The secret's path.
      type: str
    reason:
      description: Why it could not be read.
      type: str
  sample: [{path: "app/versions", reason: "GET /api/v1/secrets/app/versions: answer is about another path"}]
sha256:
  description:
    - SHA-256 of O(dest) after the task.
    - V(null) in check mode when the file would be (re)written.
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
encrypted:
  description: Whether the file is in the encrypted envelope format.
  returned: always
  type: bool
  sample: true
'''

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils._api import AuthRejected, NexusApiError
from ansible_collections.nexus.secrets.plugins.module_utils._connection import (
    CONNECTION_MODULE_KWARGS,
    api_failure_msg,
    client_from_module,
    nexus_argument_spec,
)
from ansible_collections.nexus.secrets.plugins.module_utils._crypto import require_crypto
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option
from ansible_collections.nexus.secrets.plugins.module_utils._export import listed_paths, read_secrets
from ansible_collections.nexus.secrets.plugins.module_utils._file_args import (
    apply_file_args, file_args_problem, mode_option,
)
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import atomic_write
from ansible_collections.nexus.secrets.plugins.module_utils._password_policy import POLICIES, apply_policy
from ansible_collections.nexus.secrets.plugins.module_utils._secrets_io import (
    ExportFileError,
    build_export,
    decode_export,
    encode_export,
    path_diff,
    read_export_file,
    same_content,
)


def read_existing(dest, password):
    """``(document or None, sha256 or None)`` of what ``dest`` holds now."""
    if not os.path.isfile(dest):
        return None, None
    try:
        blob = read_export_file(dest)
    except ExportFileError:
        return None, None  # too large to be compared: it will be replaced
    try:
        document = decode_export(blob, password)
    except ExportFileError:
        document = None  # unreadable or another password: it will be replaced
    return document, hashlib.sha256(blob).hexdigest()


def diff_text(document):
    return ''.join(p + '\n' for p in sorted(s.get('path') for s in (document or {}).get('secrets') or []
                                            if isinstance(s, dict) and isinstance(s.get('path'), str)))


def main():
    module = AnsibleModule(
        argument_spec=nexus_argument_spec(
            dest=dict(type='path', required=True),
            prefix=dict(type='str', default=''),
            workers=dict(type='int', default=8),
            export_password=password_option('export_password'),
            password_policy=dict(type='str', choices=list(POLICIES), default='warn', no_log=False),
            mode=mode_option(),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
        **CONNECTION_MODULE_KWARGS
    )
    params = module.params
    dest = os.path.abspath(params['dest'])
    prefix = params['prefix'] or ''
    password = params['export_password'] or None
    if params['workers'] < 1:
        module.fail_json(msg='workers must be 1 or more (got %d)' % params['workers'])
    bad = empty_password_msg(params, ['export_password']) or file_args_problem(params)
    if bad:
        module.fail_json(msg=bad)
    require_crypto(module, needed=bool(password))
    findings = apply_policy(module, 'export_password', password, params['password_policy'])
    if os.path.isdir(dest):
        module.fail_json(msg='dest %s is a directory; give a file name' % dest)
    if not os.path.isdir(os.path.dirname(dest)):
        module.fail_json(msg='the directory of dest does not exist: %s' % os.path.dirname(dest))

    client = client_from_module(module, pool_size=params['workers'])
    try:
        secrets, unreadable = read_secrets(client, listed_paths(client, prefix), params['workers'],
                                           client.retries + 1)
    except NexusApiError as exc:
        module.fail_json(msg=api_failure_msg('cannot list the secrets at %s' % client.url, exc, params),
                         status=exc.status)
    except AuthRejected as exc:
        module.fail_json(msg=api_failure_msg('reading secrets at %s stopped' % client.url, exc.error, params),
                         status=exc.error.status)
    finally:
        client.close()

    document = build_export(secrets)
    existing, existing_sha = read_existing(dest, password)
    same = existing is not None and same_content(document, existing)
    result = dict(changed=not same, path=dest, count=len(secrets), unreadable=unreadable,
                  encrypted=bool(password), sha256=existing_sha if same else None, password_findings=findings)
    if module._diff:
        added, removed, changed = path_diff(existing, document)
        result['diff'] = dict(before=diff_text(existing),
                              after=''.join(p + (' (changed)' if p in changed else '') + '\n'
                                            for p in sorted(s['path'] for s in document['secrets'])),
                              before_header='%s (%d secrets)' % (dest, len((existing or {}).get('secrets') or [])),
                              after_header='%s (%d added, %d removed, %d changed)'
                                           % (dest, len(added), len(removed), len(changed)))
    if unreadable:
        module.warn('%d secret(s) could not be read and are not in the export; see "unreadable"'
                    % len(unreadable))

    if not same and not module.check_mode:
        data = encode_export(document, password)
        try:
            with atomic_write(dest, mode=0o600) as fh:
                fh.write(data)
        except (IOError, OSError) as exc:
            module.fail_json(msg='cannot write %s: %s' % (dest, exc.strerror or exc))
        result['sha256'] = hashlib.sha256(data).hexdigest()

    # A replaced file is new: only an untouched (or, in check mode, the existing) dest has a before.
    attributes = {}
    result['changed'] = apply_file_args(module, [dest], result['changed'],
                                        diff=attributes if same or module.check_mode else None)
    if module._diff:
        for side in ('before', 'after'):  # the file's own lines, after the secret paths
            result['diff'][side] += ''.join('# %s: %s\n' % item for item in sorted(attributes.get(side, {}).items()))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
