#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_backup_upload
short_description: Copy a NEXUS backup and its sidecar to S3-compatible object storage, verify it, apply retention there
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Uploads O(src) to C(<prefix>/<host>/<file name>) in O(bucket), and its C(sha256sum) sidecar
    C(<src>.sha256) to C(<prefix>/<host>/<file name>.sha256). Without a local sidecar, one is made
    from the file's SHA-256. A file that does not match its sidecar is not uploaded.
  - Files of O(part_size) or more go up as a multipart upload with at most O(concurrency) parts in
    flight (memory about O(part_size) times O(concurrency), whatever the file size). Each part
    carries Content-MD5, which the store checks. On any failure the multipart upload is aborted, so
    the bucket never holds a partial object under the backup's key.
  - With O(verify) (the default), the stored object is checked after the upload. Its size (HEAD)
    must equal the file's, and the object is read back from the store and its SHA-256 must equal
    the file's. The sidecar object must read back as the local sidecar. The SHA-256 is also stored
    in the object's user metadata (C(x-amz-meta-sha256)) where the store keeps metadata.
  - An existing object is not replaced by default. When the key already holds the same content, nothing is
    uploaded (idempotent); when it holds other content, the module fails.
  - With O(overwrite=different), an object (or sidecar object) with other content is replaced, as after a
    rotation of the backup password (M(nexus.secrets.nexus_backup_rekey) does this for a host's whole
    bucket). The file must first prove to be a backup under O(backup_password). Its whole envelope is
    decrypted and must authenticate (AES-GCM tag), so a corrupt or foreign file never replaces a good object
    and the module fails with the object left as it was. The object is replaced by one PUT (or
    CompleteMultipartUpload), which the store applies atomically; readers see the old object or the new
    one. The sidecar object is written after it. A run stopped in between leaves a sidecar naming the old
    SHA-256, which the next run with O(overwrite=different) rewrites.
  - After a successful upload, the C(keep_*) retention rules of M(nexus.secrets.nexus_backup) are
    applied to this host's backups in the bucket (only objects named like nexusctl backups directly
    under C(<prefix>/<host>/); other hosts' objects are never touched). Each pruned backup's sidecar
    object goes with it.
extends_documentation_fragment:
  - nexus.secrets.s3
  - nexus.secrets.retention
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Uploads and deletes nothing; reports the key, whether it would be uploaded and what retention would prune.
      - When O(src) does not exist yet (a check-mode run of M(nexus.secrets.nexus_backup) only names it), it is
        reported as to be uploaded, with RV(size) and RV(sha256) null.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  src:
    description:
      - The backup file on the managed host, named like nexusctl backups
        (C(nexus-backup-YYYY-MM-DD-HHMMSS.tar.gz.enc)) when retention is used. Symbolic links are
        not followed.
    type: path
    required: true
  verify:
    description:
      - Read the stored object back and compare its size and SHA-256 with the file's.
    type: bool
    default: true
  part_size:
    description:
      - Size of each part of a multipart upload, in MiB (at least 5, as S3 requires). Smaller files
        go up in one request. The part size grows when a file would need more than 10000 parts.
    type: int
    default: 16
  concurrency:
    description:
      - Parts uploaded at the same time.
    type: int
    default: 4
  overwrite:
    description:
      - V(never) fails when the key (or its sidecar key) holds other content.
      - V(different) replaces such an object, but only with a file that authenticates under O(backup_password).
    type: str
    choices: [never, different]
    default: never
    version_added: 0.4.0
  backup_password:
    description:
      - The password O(src) must open with to replace an object (O(overwrite=different)); not used otherwise.
      - If not set, the value of the E(NEXUS_BACKUP_PASSWORD) environment variable is used (the controller's,
        then the managed host's).
    type: str
    version_added: 0.4.0
notes:
  - Retention applies to this host's objects under C(<prefix>/<host>/) only, with the same rules as for
    local backups.
  - The existence check and the upload are two requests; two runs that upload the same file name
    for the same host at the same moment are not detected. Runs of M(nexus.secrets.nexus_backup)
    on one host never overlap, and names are per host and per second.
  - Objects are encrypted backups; the bucket still should not be public.
seealso:
  - module: nexus.secrets.nexus_backup
  - module: nexus.secrets.nexus_backup_download
'''

EXAMPLES = r'''
- name: Back up
  nexus.secrets.nexus_backup:
    dest: /var/backups/nexus
    keep_last: 3
  register: backup

- name: Keep a month of dailies off the host, in MinIO
  nexus.secrets.nexus_backup_upload:
    src: "{{ backup.path }}"
    bucket: nexus-backups
    host: "{{ inventory_hostname }}"
    endpoint_url: https://minio.example.com:9000
    aws_access_key_id: "{{ vault_s3_access_key }}"
    aws_secret_access_key: "{{ vault_s3_secret_key }}"
    keep_daily: 30

- name: Upload to AWS S3 with the instance role's credentials
  nexus.secrets.nexus_backup_upload:
    src: "{{ backup.path }}"
    bucket: example-corp-nexus
    prefix: prod
    region: eu-west-1
    host: "{{ inventory_hostname }}"

- name: Replace the copy in the bucket after a backup-password rotation of the local file
  nexus.secrets.nexus_backup_upload:
    src: /var/backups/nexus/nexus-backup-2025-12-04-001500.tar.gz.enc
    bucket: nexus-backups
    host: "{{ inventory_hostname }}"
    overwrite: different
    backup_password: "{{ vault_backup_password }}"
'''

RETURN = r'''
key:
  description: The backup's object key.
  returned: always
  type: str
  sample: nexus-backups/nexus01/nexus-backup-2025-12-04-001500.tar.gz.enc
sidecar_key:
  description: The sidecar's object key.
  returned: always
  type: str
  sample: nexus-backups/nexus01/nexus-backup-2025-12-04-001500.tar.gz.enc.sha256
size:
  description: Size of the file in bytes (null in check mode when O(src) does not exist yet).
  returned: always
  type: int
  sample: 48213
sha256:
  description: SHA-256 of the file (null in check mode when O(src) does not exist yet).
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
uploaded:
  description: Whether the backup or its sidecar was uploaded (would be, in check mode); false when the bucket already held both.
  returned: always
  type: bool
replaced:
  description:
    - Whether an existing object or sidecar object with other content was replaced (would be, in check mode),
      with O(overwrite=different).
  returned: always
  type: bool
  version_added: 0.4.0
verified:
  description: Whether the stored object was read back and matched the file's size and SHA-256.
  returned: always
  type: bool
pruned:
  description: This host's backups removed from the bucket by retention (would be, in check mode), by file name.
  returned: always
  type: list
  elements: str
  sample: [nexus-backup-2025-11-01-001500.tar.gz.enc]
duration:
  description: Seconds the upload, verification and retention took.
  returned: always
  type: float
  sample: 3.2
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _retention, _s3
from ansible_collections.nexus.secrets.plugins.module_utils._crypto import require_crypto
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option


def argument_spec():
    extra = dict(
        src=dict(type='path', required=True),
        verify=dict(type='bool', default=True),
        part_size=dict(type='int', default=16),
        concurrency=dict(type='int', default=4),
        overwrite=dict(type='str', choices=['never', 'different'], default='never'),
        backup_password=password_option('backup_password'),
    )
    extra.update(_retention.keep_argument_spec())
    return _s3.s3_argument_spec(**extra)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    _s3.require_boto3(module)
    started = time.time()
    try:
        rules = _retention.keep_rules(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if params['part_size'] < 5:
        module.fail_json(msg='part_size must be at least 5 (MiB), got %d' % params['part_size'])
    if params['concurrency'] < 1:
        module.fail_json(msg='concurrency must be at least 1, got %d' % params['concurrency'])
    overwrite = params['overwrite'] == 'different'
    empty = empty_password_msg(params, ['backup_password'])
    if empty:
        module.fail_json(msg=empty)
    if overwrite and not params['backup_password']:
        module.fail_json(msg='overwrite=different needs backup_password (or NEXUS_BACKUP_PASSWORD): a file replaces '
                             'an object only once it opens with that password')
    if overwrite:
        require_crypto(module)
    try:
        client = _s3.client_from_params(params)
        result = _s3.upload_backup(client, params['bucket'], params['prefix'], params['host'], params['src'],
                                   rules=rules, verify=params['verify'], check_mode=module.check_mode,
                                   part_size=params['part_size'] * _s3.MIB, concurrency=params['concurrency'],
                                   overwrite=overwrite, backup_password=params['backup_password'] if overwrite else None)
    except _s3.S3Error as exc:
        module.fail_json(msg='%s: %s' % (params['host'], exc), duration=round(time.time() - started, 3))
    result['duration'] = round(time.time() - started, 3)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
