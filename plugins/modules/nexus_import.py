#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_import
short_description: Import secrets into a NEXUS server from a nexusctl export file
version_added: 0.1.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Reads an export file written by C(nexusctl export) or M(nexus.secrets.nexus_export), plain JSON
    or encrypted, validates all of it, then creates the secrets the server does not have, with
    O(workers) parallel requests.
  - Existing secrets are skipped, or with O(overwrite=true) read and updated only when their value
    or metadata differ (every update creates a new version on the server, so identical secrets are
    left alone). A second identical run changes nothing.
  - Works around C(nexusctl import)'s failure against sqlite servers, which answer an existing path
    with HTTP 500 instead of 409. A create refused with 500 or 409 is re-checked with a GET; an
    existing secret is then skipped or compared; a path the server has deleted (NEXUS never lets a
    deleted path be created again) is reported in RV(failures) with that reason.
  - Creates and updates that fail with a connection error or an HTTP 500/502/503/504 answer are
    retried (up to O(retries) times) only after a GET shows they did not take effect, so a retry
    never duplicates a write.
requirements:
  - requests
  - cryptography >= 44, or cryptography with argon2-cffi (only with O(export_password))
extends_documentation_fragment:
  - nexus.secrets.connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the file and the server (listing and GETs only) and reports what a real run would do.
      - The API hides deleted paths, so a deleted path in the file is predicted as created.
  diff_mode:
    support: full
    details: Lists the secret paths per outcome (created, updated, unchanged, skipped, failed); never values.
  platform:
    platforms: posix
options:
  src:
    description:
      - The export file. JSON when its first non-blank character is C({), otherwise nexusctl's
        encrypted envelope, which needs O(export_password).
    type: path
    required: true
  export_password:
    description:
      - Password of an encrypted O(src).
      - If not set, the value of the E(NEXUS_EXPORT_PASSWORD) environment variable is used (an empty
        variable counts as unset). An empty O(export_password) fails, changing nothing.
    type: str
  overwrite:
    description:
      - Update secrets that already exist on the server when their value or metadata differ from
        the file. When V(false) they are skipped without being read.
    type: bool
    default: false
  prefix:
    description:
      - Import only the secrets of the file whose path starts with this string (literal match).
    type: str
    default: ''
  workers:
    description:
      - How many secrets are processed in parallel.
    type: int
    default: 8
  fail_on_error:
    description:
      - Fail the task when any secret could not be imported (after all the others were processed).
      - When V(false) the task succeeds and RV(failures) lists them.
    type: bool
    default: true
  remove_src:
    description:
      - Remove O(src) after an import in which every secret of the file was created, updated, found
        unchanged or skipped as existing (no failure, and O(prefix) left none of the file's secrets out),
        as the nexusctl guide recommends for export files.
      - The file is overwritten with zeros and flushed to disk before it is unlinked, so its plaintext
        does not stay in freed blocks where the filesystem writes in place (copy-on-write and
        log-structured filesystems, and their snapshots, may still hold old blocks).
      - Otherwise O(src) is kept and RV(src_removed) says why not.
    type: bool
    default: false
    version_added: 0.3.0
notes:
  - The whole file is checked before the server is contacted (valid JSON, a C(secrets) list, each with a
    non-empty string C(path) and C(value), C(metadata) a map of strings, no path twice); an invalid file
    changes nothing.
  - The C(version) and C(created_*) fields of the file are ignored, as C(nexusctl import) does.
  - Paths that end in C(/versions), start or end with C(/), or contain C(//), C(.) or C(..) segments are
    not imported and are reported in RV(failures), since NEXUS would store them but could never return them.
seealso:
  - module: nexus.secrets.nexus_export
'''

EXAMPLES = r'''
- name: Migrate secrets from one server to another
  module_defaults:
    group/nexus.secrets.nexus:
      username: admin
      password: "{{ nexus_admin_password }}"
  block:
    - name: Export from the old server
      nexus.secrets.nexus_export:
        url: http://old-nexus:9000
        dest: /root/migration.json.enc
        export_password: "{{ export_password }}"

    - name: Import into the new server, updating what differs
      nexus.secrets.nexus_import:
        url: http://new-nexus:9000
        src: /root/migration.json.enc
        export_password: "{{ export_password }}"
        overwrite: true

- name: Import a nexusctl export with an API key, reporting failures without failing
  nexus.secrets.nexus_import:
    api_key: "{{ nexus_api_key }}"
    src: secrets.json
    fail_on_error: false
  register: imported
'''

RETURN = r'''
src_removed:
  description: Whether O(src) was overwritten and removed (O(remove_src)); in check mode, whether it would be.
  returned: always
  type: bool
  sample: true
created:
  description: How many secrets were created (in check mode, would be).
  returned: always
  type: int
  sample: 8
updated:
  description: How many existing secrets got a new value or metadata (needs O(overwrite)).
  returned: always
  type: int
  sample: 1
unchanged:
  description: How many existing secrets already held the file's value and metadata (needs O(overwrite)).
  returned: always
  type: int
  sample: 2
skipped_existing:
  description:
    - How many existing secrets were left alone because O(overwrite) is V(false).
    - Not called C(skipped) because Ansible reserves that result key (it would mark the task skipped).
  returned: always
  type: int
  sample: 0
failures:
  description:
    - The secrets that could not be imported, with the reason.
    - Not called C(failed) because Ansible reserves that result key.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The secret's path.
      type: str
    reason:
      description: Why it was not imported.
      type: str
  sample:
    - path: prod/deleted/thing
      reason: "the path was deleted on the server, and NEXUS never lets a deleted path be created again
        (create answered HTTP 500: failed to create secret, GET answers 404)"
total:
  description: How many secrets of the file were considered (after O(prefix)).
  returned: always
  type: int
  sample: 11
'''

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
from ansible_collections.nexus.secrets.plugins.module_utils._import import (
    Importer,
    diff_of,
    import_in_passes,
    tally,
)
from ansible_collections.nexus.secrets.plugins.module_utils._secrets_io import (
    ExportFileError,
    decode_export,
    overwrite_and_remove,
    read_export_file,
    summarize_problems,
    validate_export,
)


def load_secrets(module, src, password):
    try:
        blob = read_export_file(src)
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot read src %s: %s' % (src, exc.strerror or exc))
    except ExportFileError as exc:
        module.fail_json(msg='src %s cannot be imported: %s; nothing was changed' % (src, exc))
    try:
        document = decode_export(blob, password)
    except ExportFileError as exc:
        module.fail_json(msg='src %s cannot be imported: %s; nothing was changed' % (src, exc))
    secrets, problems = validate_export(document)
    if problems:
        module.fail_json(msg='src %s is not a valid export (%d problem(s)): %s; nothing was changed'
                             % (src, len(problems), summarize_problems(problems)))
    return secrets


def main():
    module = AnsibleModule(
        argument_spec=nexus_argument_spec(
            src=dict(type='path', required=True),
            export_password=password_option('export_password'),
            overwrite=dict(type='bool', default=False),
            prefix=dict(type='str', default=''),
            workers=dict(type='int', default=8),
            fail_on_error=dict(type='bool', default=True),
            remove_src=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
        **CONNECTION_MODULE_KWARGS
    )
    params = module.params
    prefix = params['prefix'] or ''
    if params['workers'] < 1:
        module.fail_json(msg='workers must be 1 or more (got %d)' % params['workers'])
    empty = empty_password_msg(params, ['export_password'])
    if empty:
        module.fail_json(msg=empty + '; nothing was changed')
    require_crypto(module, needed=bool(params['export_password']))
    in_file = load_secrets(module, params['src'], params['export_password'] or None)
    secrets = [s for s in in_file if s['path'].startswith(prefix)]

    client = client_from_module(module, pool_size=params['workers'])
    try:
        # One listing tells which paths exist; the server's prefix filter may only widen it.
        present = set(s.get('path') for s in client.list_secrets(prefix or None) if isinstance(s, dict))
    except NexusApiError as exc:
        client.close()
        module.fail_json(msg=api_failure_msg('cannot list the secrets at %s; nothing was changed' % client.url,
                                             exc, params), status=exc.status)
    importer = Importer(client, present, params['overwrite'], module.check_mode)
    results = {}
    aborted = None
    try:
        import_in_passes(importer, secrets, params['workers'], client.retries + 1, client.pause, results)
    except AuthRejected as exc:
        aborted = exc.error
    finally:
        client.close()

    counts, failed = tally(results)
    # "skipped" and "failed" are reserved result keys in Ansible (they set the task's status).
    result = dict(changed=bool(counts['created'] or counts['updated']), created=counts['created'],
                  updated=counts['updated'], unchanged=counts['unchanged'],
                  skipped_existing=counts['skipped'], failures=failed, total=len(secrets))
    if module._diff:
        result['diff'] = diff_of(results)
    if aborted is not None:
        module.fail_json(msg=api_failure_msg('the import stopped after %d of %d secrets'
                                             % (len(results), len(secrets)), aborted, params), **result)
    result['src_removed'] = False
    if params['remove_src']:
        if failed or len(secrets) != len(in_file):
            module.warn('src %s was kept: %s' % (params['src'], 'some secrets failed' if failed else
                                                 'prefix left some of its secrets out of the import'))
        else:
            if not module.check_mode:
                try:
                    overwrite_and_remove(params['src'])
                except (IOError, OSError) as exc:
                    module.fail_json(msg='the import succeeded but src %s could not be removed: %s'
                                         % (params['src'], exc.strerror or exc), **result)
            result['src_removed'] = result['changed'] = True
    if failed and params['fail_on_error']:
        module.fail_json(msg='%d of %d secrets could not be imported: %s' % (
            len(failed), len(secrets),
            summarize_problems(['%s: %s' % (f['path'], f['reason']) for f in failed], 5)), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
