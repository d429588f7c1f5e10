#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_audit_info
short_description: Count who listed, read or changed secrets on a NEXUS server since a given time
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Reads the server's audit log (C(GET /api/v1/audit), admin only) and counts its entries since
    O(since), per action and per user, optionally only for some O(actions) and O(users).
  - An export of many secrets shows as one user with many read entries, so a scheduled job can
    compare RV(by_user) with a threshold and fail (see the examples and C(playbooks/audit_review.yml)).
    This is the review of audit logs for unexpected exports that the nexusctl guide recommends.
  - Read-only; returns counts, never audit entries or secret paths.
requirements:
  - requests
extends_documentation_fragment:
  - nexus.secrets.connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  since:
    description:
      - Count entries at or after this time. Either an RFC 3339 time stamp
        (C(2026-12-01T00:00:00Z)) or a duration back from now, a number and one of C(s), C(m), C(h),
        C(d), C(w) (C(24h), C(7d)).
    type: str
    default: 24h
  actions:
    description:
      - Count only these actions, as the server names them in its log (the reference server writes
        C(secret.read), C(secret.list), C(secret.create), C(secret.update), C(secret.delete),
        C(secret.versions) and C(auth.login)). Empty counts every action.
    type: list
    elements: str
    default: []
  users:
    description:
      - Count only entries by these users (the log's C(user) field, a user id such as C(admin-001)).
        Empty counts every user.
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: Count reads and listings of the last 24 hours
  nexus.secrets.nexus_audit_info:
    url: http://127.0.0.1:9000
    token: "{{ vault_nexus_token }}"
    since: 24h
    actions: [secret.read, secret.list]
  register: audit

- name: Fail when any user read more secrets than expected (an unexpected export)
  ansible.builtin.assert:
    that: (audit.by_user | dict2items | map(attribute='value.actions') | map('dict2items') | flatten
           | selectattr('key', 'equalto', 'secret.read') | map(attribute='value') | max | default(0)) <= 500
    fail_msg: "Unexpected bulk read: {{ audit.top_users[:3] }}"
'''

RETURN = r'''
since:
  description: The start of the counted window, in UTC.
  returned: success
  type: str
  sample: '2026-12-01T03:00:00Z'
entries:
  description: How many audit entries matched.
  returned: success
  type: int
  sample: 10523
failed_requests:
  description: How many of them record a failed request.
  returned: success
  type: int
  sample: 2
undated:
  description: Entries left out because their time stamp could not be read.
  returned: success
  type: int
  sample: 0
by_action:
  description: Matching entries per action.
  returned: success
  type: dict
  sample: {"secret.read": 10500, "secret.list": 23}
by_user:
  description: Per user, the matching entries (C(total)), per action (C(actions)), how many distinct
    secret paths they touched (C(paths)) and how many failed (C(failed)).
  returned: success
  type: dict
  sample: {"admin-001": {"total": 10523, "actions": {"secret.read": 10500, "secret.list": 23}, "paths": 10500, "failed": 2}}
top_users:
  description: Users by number of matching entries, most first.
  returned: success
  type: list
  elements: dict
  sample: [{"user": "admin-001", "total": 10523}]
first:
  description: The time of the oldest matching entry, or null.
  returned: success
  type: str
  sample: '2026-12-01T03:00:12Z'
last:
  description: The time of the newest matching entry, or null.
  returned: success
  type: str
  sample: '2026-12-02T02:59:58Z'
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils._api import NexusApiError
from ansible_collections.nexus.secrets.plugins.module_utils._audit import resolve_since, summarize
from ansible_collections.nexus.secrets.plugins.module_utils._connection import (
    CONNECTION_MODULE_KWARGS,
    api_failure_msg,
    client_from_module,
    nexus_argument_spec,
)


def main():
    module = AnsibleModule(
        argument_spec=nexus_argument_spec(
            since=dict(type='str', default='24h'),
            actions=dict(type='list', elements='str', default=[]),
            users=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
        **CONNECTION_MODULE_KWARGS
    )
    params = module.params
    try:
        since = resolve_since(params['since'])
    except ValueError:
        module.fail_json(msg='since must be an RFC 3339 time (2026-12-01T00:00:00Z) or a duration such as '
                             '24h or 7d (got %r)' % params['since'])
    client = client_from_module(module)
    try:
        entries = client.list_audit(params['actions'][0] if len(params['actions']) == 1 else None)
    except NexusApiError as exc:
        module.fail_json(msg=api_failure_msg('cannot read the audit log at %s' % client.url, exc, params),
                         status=exc.status)
    finally:
        client.close()
    result = summarize(entries, since, params['actions'], params['users'])
    module.exit_json(changed=False, since=since.strftime('%Y-%m-%dT%H:%M:%SZ'), **result)


if __name__ == '__main__':
    main()
