#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_backup_download
short_description: List a host's NEXUS backups in S3-compatible object storage and download one
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Lists the backups of O(host) under C(<prefix>/<host>/) in O(bucket), newest first by the time
    in their name. Only objects named like nexusctl backups directly under that prefix are listed,
    so another host's backups are never considered.
  - Downloads the backup O(name), or without it the newest one (before O(before) when given), and
    its C(.sha256) sidecar object into O(dest). The object is streamed into a private C(0600)
    temporary file beside the target while its SHA-256 is computed. It is renamed into place only
    when that SHA-256 and the size match the sidecar object (and the C(sha256) user metadata, when
    the store returns it). A backup without a sidecar object is not downloaded.
  - An existing file in O(dest) is never replaced. When it already holds the same content, nothing
    is downloaded (idempotent); when it holds other content, the module fails.
  - Whether the backup decrypts and restores is checked by M(nexus.secrets.nexus_backup_info), as
    the C(nexus.secrets.disaster_recovery) role does.
extends_documentation_fragment:
  - nexus.secrets.s3
  - ansible.builtin.files
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Lists, and reports what would be downloaded or whose O(mode), O(owner) or O(group) would change;
      writes nothing.
  diff_mode:
    support: partial
    details: Shows the O(mode), O(owner) and O(group) changes of a backup or sidecar already in O(dest); never
      contents.
  platform:
    platforms: posix
options:
  dest:
    description:
      - Directory on the managed host that receives the backup and its sidecar. It must exist and must
        not be a symbolic link. Required unless O(list_only=true).
    type: path
  mode:
    description:
      - Permissions of the backup and its sidecar in O(dest), as for M(ansible.builtin.file) - an octal
        string such as V('0640') or a symbolic mode such as V(u=rw,g=r). As in every Ansible module, a
        YAML integer is taken as the number it is (V(640) unquoted is C(01200)), so quote octal modes.
      - Both files are written C(0600) from their first byte and get this mode once complete; files
        already in O(dest) with the same content get it too.
      - O(owner), O(group), the SELinux options and O(attributes) apply to both files as well.
        O(unsafe_writes) has no effect; the files are always renamed into place atomically.
    type: raw
    default: '0600'
  name:
    description:
      - The backup's file name (for example C(nexus-backup-2025-12-04-001500.tar.gz.enc)). Default
        is the newest backup of the host, before O(before) when that is set.
    type: str
  before:
    description:
      - Only backups whose name time is earlier than this local date or date-time, ISO 8601
        (C(2025-12-04) or C(2025-12-04T00:15:00)), are listed and chosen.
    type: str
  list_only:
    description:
      - Only list the host's backups; download nothing.
    type: bool
    default: false
seealso:
  - module: nexus.secrets.nexus_backup_upload
  - module: nexus.secrets.nexus_backup_info
'''

EXAMPLES = r'''
- name: Newest backup of this host from before the incident
  nexus.secrets.nexus_backup_download:
    bucket: nexus-backups
    host: "{{ inventory_hostname }}"
    endpoint_url: https://minio.example.com:9000
    before: '2025-12-04T09:30:00'
    dest: /var/backups/nexus-restore
  register: fetched

- name: Check it before restoring it
  nexus.secrets.nexus_backup_info:
    path: "{{ fetched.path }}"
    backup_password: "{{ vault_nexus_backup_password }}"

- name: List this host's backups in the bucket
  nexus.secrets.nexus_backup_download:
    bucket: nexus-backups
    host: "{{ inventory_hostname }}"
    list_only: true
  register: listing
'''

RETURN = r'''
backups:
  description: The host's backups in the bucket (before O(before) when set), newest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: File name.
      type: str
    key:
      description: Object key.
      type: str
    size:
      description: Size in bytes.
      type: int
    time:
      description: The local time in the file name, ISO 8601.
      type: str
    last_modified:
      description: When the store last wrote the object, ISO 8601 with offset.
      type: str
    sidecar:
      description: Whether the C(.sha256) sidecar object exists.
      type: bool
  sample:
    - name: nexus-backup-2025-12-04-001500.tar.gz.enc
      key: nexus-backups/nexus01/nexus-backup-2025-12-04-001500.tar.gz.enc
      size: 48213
      time: '2025-12-04T00:15:00'
      last_modified: '2025-12-04T00:15:04+00:00'
      sidecar: true
path:
  description: The downloaded backup on the managed host (would be, in check mode); absent with O(list_only).
  returned: unless list_only
  type: str
  sample: /var/backups/nexus-restore/nexus-backup-2025-12-04-001500.tar.gz.enc
key:
  description: The object key of the chosen backup.
  returned: unless list_only
  type: str
size:
  description: Size of the backup in bytes.
  returned: unless list_only
  type: int
sha256:
  description: SHA-256 of the backup, as its sidecar object states and the download matched.
  returned: unless list_only
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _s3
from ansible_collections.nexus.secrets.plugins.module_utils._file_args import (
    apply_file_args, file_args_problem, mode_option,
)


def argument_spec():
    return _s3.s3_argument_spec(
        dest=dict(type='path'),
        name=dict(type='str'),
        before=dict(type='str'),
        list_only=dict(type='bool', default=False),
        mode=mode_option(),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, add_file_common_args=True,
                           required_if=[('list_only', False, ('dest',))])
    params = module.params
    _s3.require_boto3(module)
    bad = file_args_problem(params)
    if bad:
        module.fail_json(msg=bad)
    try:
        before = _s3.parse_before(params['before'])
        client = _s3.client_from_params(params)
        backups = _s3.filter_before(_s3.list_backups(client, params['bucket'], params['prefix'], params['host']),
                                    before)
        if params['list_only']:
            module.exit_json(changed=False, backups=backups)
        name = params['name']
        if not name:
            if not backups:
                raise _s3.S3Error('no backup of %s under s3://%s/%s%s' % (
                    params['host'], params['bucket'], _s3.host_prefix(params['prefix'], params['host']),
                    ' before %s' % before.isoformat() if before else ''))
            name = backups[0]['name']
        result = _s3.download_backup(client, params['bucket'], params['prefix'], params['host'], name,
                                     params['dest'], check_mode=module.check_mode)
    except _s3.S3Error as exc:
        module.fail_json(msg='%s: %s' % (params['host'], exc))
    # A file downloaded just now is new: only files that were already there (or, in check mode, are) have a before.
    attributes = {}
    result['changed'] = apply_file_args(module, [result['path'], result['path'] + _layout.SIDECAR_SUFFIX],
                                        result['changed'],
                                        diff=attributes if module.check_mode or not result['changed'] else None)
    if module._diff and attributes:
        result['diff'] = dict(attributes, before_header=result['path'], after_header=result['path'])
    module.exit_json(backups=backups, **result)


if __name__ == '__main__':
    main()
