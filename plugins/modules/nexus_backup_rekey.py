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
  - With O(bucket), the host's copies in S3-compatible object storage (C(<prefix>/<host>/), the layout of
    M(nexus.secrets.nexus_backup_upload)) are rotated too, including backups that remote retention keeps
    longer than the host does. Which password an object opens with is read from its first bytes. An
    object under the old password is replaced by the rotated local copy of the same backup, which must
    first authenticate under O(new_backup_password) in full (a corrupt file never replaces an object).
    Without a usable local copy, the object is re-encrypted from its own content. It is streamed from the
    store through decryption and encryption into a private C(0600) temp file in O(path), read back and
    compared, uploaded, and the temp file removed. No plaintext touches disk.
  - An object is replaced by one PUT (or CompleteMultipartUpload), which the store applies atomically, so
    it opens with the old or the new password at every moment. Its sidecar object is rewritten after it.
    A run killed in between leaves a sidecar naming the old SHA-256 (M(nexus.secrets.nexus_backup_download)
    refuses the object until then). The next run finds it against the SHA-256 in the object's metadata,
    authenticates the object under O(new_backup_password) and rewrites the sidecar.
  - File and object names never change, so retention (M(nexus.secrets.nexus_backup),
    M(nexus.secrets.nexus_backup_prune), the remote retention of M(nexus.secrets.nexus_backup_upload)) keeps
    and prunes the same backups as before. This module prunes nothing and uploads no backup that is not in
    the bucket already.
  - Copies elsewhere (for example the controller's fetched copies) still hold the old encryption; run the
    module there too, with O(path) on that directory.
requirements:
  - cryptography >= 44, or an older cryptography together with argon2-cffi (for Argon2id)
  - boto3, only with O(bucket)
extends_documentation_fragment:
  - nexus.secrets.password_policy
  - nexus.secrets.s3
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Finds which password each file and object opens with and reports what would be re-encrypted or
        replaced, and which sidecar objects would be rewritten; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - With O(bucket), the objects are not locked. An upload's remote retention that runs at the same time may
    prune a backup this module is replacing; the next upload's retention prunes it again. Schedule the
    rotation apart from the backups' uploads.
  - On a store that keeps no object metadata, finding a stale sidecar object means reading each object in full.
options:
  path:
    description:
      - A backup file, or a directory whose files matching O(pattern) are all rotated.
      - With O(bucket), the host's backup directory (for the backup role, C(<nexus_backup_dest>/<host>)); the
        temp files of remote-only backups are made there.
    type: path
    required: true
  pattern:
    description:
      - Shell pattern of the backup file names in a directory O(path), and of the object names under
        C(<prefix>/<host>/) with O(bucket).
    type: str
    default: nexus-backup-*.tar.gz.enc
  bucket:
    description:
      - Also rotate this host's backups in this S3-compatible bucket. Unset, only local files are rotated.
      - The other object-storage options are those of M(nexus.secrets.nexus_backup_upload).
    type: str
    required: false
  host:
    description:
      - The host whose objects are rotated, usually C({{ inventory_hostname }}); required with O(bucket).
        Only objects directly under C(<prefix>/<host>/) are ever read or replaced.
    type: str
    required: false
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

- name: Rotate the local backups and this host's copies in object storage
  nexus.secrets.nexus_backup_rekey:
    path: /var/backups/nexus/{{ inventory_hostname }}
    bucket: nexus-backups
    host: "{{ inventory_hostname }}"
    endpoint_url: https://minio.example.com:9000
    aws_access_key_id: "{{ vault_s3_access_key }}"
    aws_secret_access_key: "{{ vault_s3_secret_key }}"
    backup_password: "{{ vault_old_backup_password }}"
    new_backup_password: "{{ vault_backup_password }}"
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
remote_rotated:
  description: The object keys replaced by a copy under O(new_backup_password) (in check mode, those that would be).
  returned: always
  type: list
  elements: str
  sample: ['nexus-backups/nexus01/nexus-backup-2026-11-01-020000.tar.gz.enc']
remote_already:
  description: The object keys that already open with O(new_backup_password).
  returned: always
  type: list
  elements: str
remote_sidecars_fixed:
  description:
    - Keys of objects that open with O(new_backup_password) whose sidecar object was missing or named another
      SHA-256, and was rewritten (in check mode, would be).
  returned: always
  type: list
  elements: str
failures:
  description: The files and objects that open with neither password or could not be rewritten, each left as it was.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file (for a local failure).
      type: str
    key:
      description: The object key (for a failure in the bucket).
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

import fnmatch
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _rekey_backups, _rekey_remote, _s3
from ansible_collections.nexus.secrets.plugins.module_utils._backup import BackupError, _hold_dest
from ansible_collections.nexus.secrets.plugins.module_utils._backup_info import InfoError, backup_files
from ansible_collections.nexus.secrets.plugins.module_utils._crypto import require_crypto
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option
from ansible_collections.nexus.secrets.plugins.module_utils._layout import BACKUP_GLOB
from ansible_collections.nexus.secrets.plugins.module_utils._password_policy import POLICIES, apply_policy


def argument_spec():
    spec = _s3.s3_argument_spec(
        path=dict(type='path', required=True),
        pattern=dict(type='str', default=BACKUP_GLOB),
        backup_password=password_option('backup_password'),
        new_backup_password=password_option('new_backup_password'),
        password_policy=dict(type='str', choices=list(POLICIES), default='warn', no_log=False),
    )
    # Object storage is optional here: no bucket, local files only.
    spec['bucket']['required'] = False
    spec['host']['required'] = False
    return spec


def rotate_local(module, path, old, new, result):
    """Rotate one file; True when it opens (or will, in check mode) with the new password afterwards."""
    try:
        which = _rekey_backups.which_password(path, old, new)
        if which == _rekey_backups.NEITHER:
            raise _rekey_backups.RekeyError('%s opens with neither password (or is not a backup); '
                                            'left as it was' % path)
        if which == _rekey_backups.NEW:
            result['already'].append(path)
            if not module.check_mode and _rekey_backups.fix_sidecar(path):
                result['sidecars_fixed'].append(path)
            return True
        if not module.check_mode:
            _rekey_backups.rekey_file(path, old, new)
        result['rotated'].append(path)
        return True
    except _rekey_backups.RekeyError as exc:
        result['failures'].append({'path': path, 'reason': str(exc)})
        return False


def rotate_remote(module, remote, name, local, directory, old, new, result):
    """Rotate the object of backup ``name``; ``local`` is its rotated local copy, or None."""
    params = module.params
    client, bucket = remote['client'], params['bucket']
    key = _s3.host_prefix(params['prefix'], params['host']) + name
    try:
        which = _rekey_remote.object_password(client, bucket, key, old, new)
        if which == _rekey_remote.NEITHER:
            raise _rekey_remote.RekeyError('s3://%s/%s opens with neither password (or is not a backup); '
                                           'left as it was' % (bucket, key))
        if which == _rekey_remote.NEW:
            result['remote_already'].append(key)
            if _rekey_remote.sidecar_is_stale(client, bucket, key):
                if not module.check_mode:
                    _rekey_remote.fix_sidecar(client, bucket, key, new)
                result['remote_sidecars_fixed'].append(key)
            return
        if not module.check_mode:
            if local is not None:
                _rekey_remote.replace_from_local(client, bucket, params['prefix'], params['host'], local, new)
            else:
                _rekey_remote.rekey_object(client, bucket, params['prefix'], params['host'], name, directory, old, new)
        result['remote_rotated'].append(key)
    except (_rekey_remote.RekeyError, _s3.S3Error) as exc:
        result['failures'].append({'key': key, 'reason': str(exc)})


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_by={'bucket': ('host',)},
                           supports_check_mode=True)
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
    if params['bucket'] and not os.path.isdir(params['path']):
        module.fail_json(msg='with bucket, path must be the host\'s backup directory; %s is not a directory'
                             % params['path'])
    remote = None
    if params['bucket']:
        _s3.require_boto3(module)
        try:
            remote = {'client': _s3.client_from_params(params)}
        except _s3.S3Error as exc:
            module.fail_json(msg=str(exc))
    findings = apply_policy(module, 'new_backup_password', new, params['password_policy'])
    try:
        files = sorted(backup_files(params['path'], params['pattern']))
    except InfoError as exc:
        module.fail_json(msg=str(exc))
    directory = params['path'] if os.path.isdir(params['path']) else os.path.dirname(os.path.abspath(params['path']))

    result = dict(rotated=[], already=[], sidecars_fixed=[], failures=[], removed_leftovers=[],
                  remote_rotated=[], remote_already=[], remote_sidecars_fixed=[], password_findings=findings)
    objects = []
    if remote is not None:
        try:
            objects = [item['name'] for item in _s3.list_backups(remote['client'], params['bucket'], params['prefix'],
                                                                 params['host'])
                       if fnmatch.fnmatchcase(item['name'], params['pattern'])]
        except _s3.S3Error as exc:
            module.fail_json(msg=str(exc), **result)
    lock = None
    if not module.check_mode:
        try:
            lock = _hold_dest(directory)
        except BackupError as exc:
            module.fail_json(msg=str(exc), busy=True, **result)
    try:
        if not module.check_mode:
            result['removed_leftovers'] = _rekey_backups.remove_leftovers(directory)
        local_names = {}
        for path in files:
            # Each backup in turn: the local file first, then its object, which the rotated file replaces.
            usable = rotate_local(module, path, old, new, result)
            local_names[os.path.basename(path)] = path if usable else None
            if os.path.basename(path) in objects:
                rotate_remote(module, remote, os.path.basename(path), path if usable else None, directory,
                              old, new, result)
        for name in sorted(objects):
            if name not in local_names:  # kept longer in the bucket than on the host
                rotate_remote(module, remote, name, None, directory, old, new, result)
    finally:
        if lock is not None:
            os.close(lock)
    changed = bool(result['rotated'] or result['sidecars_fixed'] or result['removed_leftovers'] or
                   result['remote_rotated'] or result['remote_sidecars_fixed'])
    if result['failures']:
        module.fail_json(msg='%d of %d backups were not rotated: %s' % (
            len(result['failures']), len(files) + len(objects),
            '; '.join(f['reason'] for f in result['failures'][:3])), changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
