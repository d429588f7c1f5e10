#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_backup_metrics
short_description: Write Prometheus textfile-collector metrics of a NEXUS backup run
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Writes C(<path>/<file_name>) (default C(nexus_backup.prom)) for node_exporter's textfile collector,
    so an existing node_exporter can alert on stale or failed backups.
  - The file is written under a temporary name in O(path) that does not end in C(.prom), fsynced and
    renamed, so a scrape never reads half a file.
  - "Samples (all gauges, no labels): C(nexus_backup_last_run_timestamp_seconds),
    C(nexus_backup_last_run_success), C(nexus_backup_last_run_busy), C(nexus_backup_duration_seconds),
    C(nexus_backup_last_success_timestamp_seconds), C(nexus_backup_size_bytes), C(nexus_backup_secrets)
    (live secrets), C(nexus_backup_verify_success) (only when verification ran) and
    C(nexus_backup_upload_success) (only when an upload ran)."
  - A failed or busy run keeps the last successful backup's time, size and secret count from the
    previous file, so C(time() - nexus_backup_last_success_timestamp_seconds) keeps growing.
  - The C(nexus.secrets.backup) role calls this after every run when C(nexus_backup_metrics_dir) is set.
attributes:
  check_mode:
    support: full
    details: Writes nothing; returns the text that would be written.
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
options:
  path:
    description:
      - The textfile collector's directory (node_exporter's C(--collector.textfile.directory)). It must exist.
    type: path
    required: true
  file_name:
    description:
      - Name of the metrics file; it must end in C(.prom).
    type: str
    default: nexus_backup.prom
  status:
    description:
      - Outcome of the run. V(busy) means another backup was running, so this run made none.
    type: str
    required: true
    choices: [ok, failed, busy]
  duration:
    description:
      - Seconds the backup took.
    type: float
  size:
    description:
      - Size of the new backup in bytes (used when O(status=ok)).
    type: int
  secrets:
    description:
      - Live secrets in the new backup (used when O(status=ok)).
    type: int
  verified:
    description:
      - Whether the new backup verified. Unset when verification did not run (no sample is written).
    type: bool
  uploaded:
    description:
      - Whether the upload off the host succeeded. Unset when no upload ran (no sample is written).
    type: bool
  mode:
    description:
      - Permissions of the metrics file, as for M(ansible.builtin.file) - an octal string such as
        V('0640') or a symbolic mode such as V(u=rw,g=r). As in every Ansible module, a YAML integer is
        taken as the number it is (V(644) unquoted is C(01204)), so quote octal modes.
      - It holds no secret, and node_exporter must be able to read it. The file is renamed into place
        with mode C(0644) and gets this mode, O(owner), O(group) and the other file options right after.
        O(unsafe_writes) has no effect; the file is always replaced atomically.
    type: raw
    default: '0644'
seealso:
  - module: nexus.secrets.nexus_backup
'''

EXAMPLES = r'''
- name: Record a successful run
  nexus.secrets.nexus_backup_metrics:
    path: /var/lib/prometheus/node-exporter
    status: ok
    duration: "{{ backup.duration }}"
    size: "{{ backup.size }}"
    secrets: "{{ backup.secrets }}"
    verified: true
'''

RETURN = r'''
path:
  description: The metrics file (in check mode, the file that would be written).
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/nexus_backup.prom
metrics:
  description: The text written (in check mode, the text that would be written).
  returned: always
  type: str
  sample: "# HELP nexus_backup_last_run_success 1 when the last backup run made a backup, else 0.\n..."
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _metrics
from ansible_collections.nexus.secrets.plugins.module_utils._file_args import (
    apply_file_args, file_args_problem, mode_option,
)


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type='path', required=True),
        file_name=dict(type='str', default=_metrics.METRICS_FILE),
        status=dict(type='str', required=True, choices=list(_metrics.STATUSES)),
        duration=dict(type='float'),
        size=dict(type='int'),
        secrets=dict(type='int', no_log=False),
        verified=dict(type='bool'),
        uploaded=dict(type='bool'),
        mode=mode_option('0644'),
    ), supports_check_mode=True, add_file_common_args=True)
    params = module.params
    name = params['file_name']
    if '/' in name or name.startswith('.') or not name.endswith('.prom'):
        module.fail_json(msg='file_name must be a plain file name ending in .prom, got %r' % name)
    bad = file_args_problem(params)
    if bad:
        module.fail_json(msg=bad)
    directory = params['path']
    if not os.path.isdir(directory):
        module.fail_json(msg='path %s is not a directory (create it, or point it at the textfile collector '
                             'directory)' % directory)
    path = os.path.join(directory, name)
    if os.path.isdir(path) and not os.path.islink(path):
        module.fail_json(msg='%s is a directory' % path)
    figures = dict((key, params[key]) for key in ('duration', 'size', 'secrets', 'verified', 'uploaded'))
    if module.check_mode:
        text = _metrics.render(params['status'], previous=_metrics.read_metrics(path), **figures)
        module.exit_json(changed=True, path=path, metrics=text)
    try:
        path, text = _metrics.write_metrics(directory, params['status'], name=name, **figures)
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot write %s: %s' % (path, exc.strerror or exc))
    apply_file_args(module, [path], True)
    module.exit_json(changed=True, path=path, metrics=text)


if __name__ == '__main__':
    main()
