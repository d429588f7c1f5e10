#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_backup_prune
short_description: Apply backup retention rules to a directory of NEXUS backups
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Removes the nexusctl-named backups (C(nexus-backup-YYYY-MM-DD-HHMMSS.tar.gz.enc)) in O(path) that
    none of the C(keep_*) rules keeps, each with its C(.sha256) sidecar, with the same rules as
    M(nexus.secrets.nexus_backup) applies after each backup (like C(restic forget)).
  - Meant for copies of backups kept elsewhere, for example the controller directory the
    C(nexus.secrets.backup) role fetches each host's backups into (run it with C(delegate_to=localhost)).
  - Only files directly in O(path) whose names match the pattern are considered; sub-directories (for
    example other hosts' directories), links and other files are never touched.
attributes:
  check_mode:
    support: full
    details: Removes nothing; reports what would be removed.
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - nexus.secrets.retention
  - ansible.builtin.action_common_attributes
options:
  path:
    description:
      - The directory that holds the backups. A missing directory has nothing to prune.
    type: path
    required: true
seealso:
  - module: nexus.secrets.nexus_backup
'''

EXAMPLES = r'''
- name: Keep a week of this host's copies on the controller
  nexus.secrets.nexus_backup_prune:
    path: "/srv/nexus-backups/{{ inventory_hostname }}"
    keep_daily: 7
  delegate_to: localhost
  become: false
'''

RETURN = r'''
pruned:
  description: The backups removed (in check mode, those that would be), newest first; their sidecars go with them.
  returned: always
  type: list
  elements: str
  sample: [/srv/nexus-backups/nexus-a/nexus-backup-2025-11-01-001500.tar.gz.enc]
kept:
  description: The backups kept, newest first.
  returned: always
  type: list
  elements: str
  sample: [/srv/nexus-backups/nexus-a/nexus-backup-2025-12-04-001500.tar.gz.enc]
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _retention
from ansible_collections.nexus.secrets.plugins.module_utils._backup import remove_backup


def main():
    spec = dict(path=dict(type='path', required=True))
    spec.update(_retention.keep_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    path = module.params['path']
    try:
        rules = _retention.keep_rules(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
        module.fail_json(msg='path %s is not a directory' % path)
    prune = _retention.plan_prune(path, rules)
    kept = [found for found, dummy in sorted(_retention.dated_backups(path), key=lambda item: item[1], reverse=True)
            if found not in prune] if os.path.isdir(path) else []
    if module.check_mode or not prune:
        module.exit_json(changed=bool(prune), pruned=prune, kept=kept)
    pruned = []
    try:
        for victim in prune:
            remove_backup(victim)
            pruned.append(victim)
    except OSError as exc:
        module.fail_json(msg='pruning %s failed: %s' % (path, exc.strerror or exc), changed=bool(pruned),
                         pruned=pruned, kept=kept)
    module.exit_json(changed=True, pruned=pruned, kept=kept)


if __name__ == '__main__':
    main()
