#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_info
short_description: Check that a NEXUS server is healthy, accepts the credentials and serves its secrets
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Read-only check of a running NEXUS server, in order. First C(GET /health). Then the
    credentials (a login for O(username)/O(password); for O(token) or O(api_key) the listing
    proves them). Then the live secret count (under O(prefix)). Last, reading one secret or every
    secret (O(read)), which proves that the keyring matches the data.
  - Secrets whose path the server can never serve (ending in C(/versions), with an empty, C(.) or
    C(..) segment) are listed in RV(unreachable_paths) and never read, so they do not fail the check.
  - Every problem found is in RV(problems); RV(ok) is V(true) when there is none. With
    O(fail_on_problems=true) the task fails with the problems as its message.
  - Returns paths, counts and reasons only, never a secret value.
requirements:
  - requests
  - cryptography >= 44, or cryptography with argon2-cffi (only with O(compare_backup))
extends_documentation_fragment:
  - nexus.secrets.connection
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
  read:
    description:
      - How many secrets to read back after the listing.
      - V(one) reads the first listed secret the API can serve (the next one when it was deleted
        since the listing). V(all) reads every one, O(workers) at a time. V(none) only counts.
    type: str
    choices: [none, one, all]
    default: one
  prefix:
    description:
      - Check only secrets whose path starts with this string (compared literally).
    type: str
    default: ''
  expected_count:
    description:
      - The number of live secrets the server should list (under O(prefix)). A different count is
        a problem. Not checked when not set.
    type: int
  workers:
    description:
      - How many secrets are read in parallel with O(read=all).
    type: int
    default: 4
  compare_backup:
    description:
      - An encrypted backup file on the host to compare the live secrets with. It is decrypted and
        validated into a private temporary directory, as M(nexus.secrets.nexus_restore) would, and
        removed afterwards; the data directory is never read. It is read only once the server has
        listed its secrets, so a server that is down or refuses the credential costs no decryption.
      - RV(backup_match) then says whether restoring it would change what the server serves. A
        secret is the same when its id and version are (every update makes a new version).
      - A difference is not a problem (RV(ok) is not affected); a backup that cannot be read is.
    type: path
  backup_password:
    description:
      - The password O(compare_backup) was encrypted with.
      - If not set, the value of the E(NEXUS_BACKUP_PASSWORD) environment variable is used (an empty
        value counts as unset).
    type: str
  staged_data_dir:
    description:
      - The data directory for which M(nexus.secrets.nexus_restore) (O(nexus.secrets.nexus_restore#module:stage_only=true))
        staged O(compare_backup). When that staged copy still matches the backup file exactly as a
        restore would require it (device, inode, size, modification time and SHA-256 of the file,
        the recorded staged files), its database is read instead of decrypting the backup again;
        otherwise the backup is decrypted as without this option. Nothing is changed either way.
      - The disaster recovery role sets it, so that comparing a running server with the backup
        costs no second decryption.
    type: path
    version_added: 0.4.0
  tmp_dir:
    description:
      - Where the private staging directory for O(compare_backup) is made; it needs room for the
        unpacked backup. Defaults to the system's temporary directory.
    type: path
  fail_on_problems:
    description:
      - Fail the task when any problem is found, with RV(problems) in its message.
    type: bool
    default: false
notes:
  - API keys live only in the server's memory and vanish when it restarts (docs/nexus-behaviour.md
    §4). After a restart (a disaster recovery, a drill) only a O(token) or O(username)/O(password)
    work; a rejected O(api_key) is reported with that explanation.
seealso:
  - module: nexus.secrets.nexus_export
  - module: nexus.secrets.nexus_backup_info
'''

EXAMPLES = r'''
- name: Check a recovered server with a token, reading one secret
  nexus.secrets.nexus_info:
    url: http://127.0.0.1:9000
    token: "{{ nexus_token }}"
    expected_count: 25
    fail_on_problems: true

- name: Read every secret back and report what the API cannot serve
  nexus.secrets.nexus_info:
    username: admin
    password: "{{ nexus_admin_password }}"
    read: all
  register: nexus_state

- name: Show the paths that can never be read over the API
  ansible.builtin.debug:
    var: nexus_state.unreachable_paths
'''

RETURN = r'''
url:
  description: The server's base URL.
  returned: always
  type: str
  sample: http://127.0.0.1:9000
health:
  description: The answer of C(GET /health).
  returned: always
  type: dict
  contains:
    status:
      description: V(healthy) (200), V(unhealthy) (another answer) or V(unreachable) (no answer).
      type: str
    http_status:
      description: The HTTP status, null without an answer.
      type: int
    detail:
      description: What was seen.
      type: str
  sample: {status: healthy, http_status: 200, detail: GET /health answered 200}
auth:
  description: Whether the server accepted the credentials (null detail when it was not asked).
  returned: always
  type: dict
  contains:
    method:
      description: V(token), V(api_key) or V(username/password).
      type: str
    ok:
      description: Whether they were accepted.
      type: bool
    detail:
      description: Why they were refused, or V(accepted).
      type: str
  sample: {method: token, ok: true, detail: accepted}
count:
  description: The number of live secrets listed (under O(prefix)); null when the listing failed.
  returned: always
  type: int
  sample: 25
checked:
  description: How many secrets were read.
  returned: always
  type: int
  sample: 1
unreadable:
  description: Secrets read with an error (for example C(failed to decrypt secret)), with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{path: app/db, reason: "GET /api/v1/secrets/app/db: HTTP 500: failed to decrypt secret (the keyring does not match the data)"}]
unreachable_paths:
  description: Listed secrets whose path the API can never serve, with the reason; never read.
  returned: always
  type: list
  elements: dict
  sample: [{path: app/versions, reason: "the path ends in /versions, which the server routes to the versions endpoint"}]
backup_match:
  description:
    - How the live secrets (under O(prefix)) differ from those in O(compare_backup); null without it
      or when the server could not be listed.
  returned: always
  type: dict
  contains:
    matches:
      description: Whether restoring the backup would change no secret the server serves.
      type: bool
    backup_secrets:
      description: Live secrets in the backup.
      type: int
    missing:
      description: How many secrets of the backup the server does not list.
      type: int
    extra:
      description: How many secrets the server lists that the backup does not hold.
      type: int
    changed:
      description: How many secrets have another id or version on the server.
      type: int
    paths:
      description: Up to ten paths of each kind (V(missing), V(extra), V(changed)).
      type: dict
    staged_copy_used:
      description: Whether the backup's secrets were read from a staged copy (O(staged_data_dir))
        rather than by decrypting the backup.
      type: bool
      version_added: 0.4.0
  sample: {matches: false, backup_secrets: 25, missing: 0, extra: 1, changed: 0,
           paths: {missing: [], extra: [app/new], changed: []}, staged_copy_used: false}
problems:
  description: Every problem found, in the order of the checks.
  returned: always
  type: list
  elements: str
  sample: ["the server lists 24 live secrets, 25 expected"]
ok:
  description: Whether no problem was found.
  returned: always
  type: bool
  sample: true
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nexus.secrets.plugins.module_utils._api import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    NexusClient,
)
from ansible_collections.nexus.secrets.plugins.module_utils._connection import (
    CONNECTION_MODULE_KWARGS,
    auth_method,
    nexus_argument_spec,
)
from ansible_collections.nexus.secrets.plugins.module_utils._crypto import require_crypto
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option
from ansible_collections.nexus.secrets.plugins.module_utils._info import (
    READ_CHOICES,
    BackupError,
    backup_secrets,
    check_server,
)
from ansible_collections.nexus.secrets.plugins.module_utils._staged import live_secrets


def main():
    module = AnsibleModule(
        argument_spec=nexus_argument_spec(
            read=dict(type='str', choices=list(READ_CHOICES), default='one'),
            prefix=dict(type='str', default=''),
            expected_count=dict(type='int'),
            workers=dict(type='int', default=4),
            compare_backup=dict(type='path'),
            backup_password=password_option('backup_password'),
            tmp_dir=dict(type='path'),
            staged_data_dir=dict(type='path'),
            fail_on_problems=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
        **CONNECTION_MODULE_KWARGS
    )
    params = module.params
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
    url = (params['url'] or '').strip()
    method = auth_method(params)
    bad = [text for wrong, text in (
        (not url.startswith(('http://', 'https://')), 'url must start with http:// or https:// (got %r)' % url),
        (method is None, 'no credentials: set token, api_key, or username and password '
                         '(or NEXUS_TOKEN, NEXUS_API_KEY, NEXUS_USERNAME/NEXUS_PASSWORD)'),
        (params['timeout'] < 1, 'timeout must be 1 or more seconds'),
        (params['retries'] < 0, 'retries must be 0 or more'),
        (params['workers'] < 1, 'workers must be 1 or more'),
        (params['expected_count'] is not None and params['expected_count'] < 0, 'expected_count must be 0 or more'),
        (params['compare_backup'] and params['backup_password'] == '',
         empty_password_msg(params, ['backup_password'])),
        (params['compare_backup'] and params['backup_password'] is None,
         'compare_backup needs backup_password (or NEXUS_BACKUP_PASSWORD)'),
    ) if wrong]
    if bad:
        module.fail_json(msg='; '.join(bad))
    backup = None
    from_staged = []
    if params['compare_backup']:
        require_crypto(module)

        def backup():
            # Read only once the server listed its secrets: a server that is down costs no decryption.
            if params['staged_data_dir']:
                found = live_secrets(params['staged_data_dir'], params['compare_backup'])
                if found is not None:
                    from_staged.append(True)
                    return found
            return backup_secrets(params['compare_backup'], params['backup_password'], params['tmp_dir'])
    # The login is part of the check (check_server), so a refused password is a result, not a crash.
    client = NexusClient(url, token=params['token'] if method == 'token' else None,
                         api_key=params['api_key'] if method == 'api_key' else None,
                         username=params['username'], password=params['password'],
                         timeout=params['timeout'], validate_certs=params['validate_certs'],
                         ca_path=params['ca_path'], retries=params['retries'], pool_size=params['workers'])
    try:
        result = check_server(client, method, params['read'], params['prefix'], params['expected_count'],
                              params['workers'], backup)
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    finally:
        client.close()
    if result['backup_match'] is not None:
        result['backup_match']['staged_copy_used'] = bool(from_staged)
    result.update(changed=False, url=client.url)
    if params['fail_on_problems'] and not result['ok']:
        module.fail_json(msg='NEXUS at %s: %s' % (client.url, '; '.join(result['problems'])), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
