#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_restore
short_description: Restore a NEXUS backup (nexusctl format) into a data directory, atomically
version_added: 0.1.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Restores a C(nexus-backup-*.tar.gz.enc) file made by C(nexusctl backup create) or
    M(nexus.secrets.nexus_backup) into the data directory of a stopped NEXUS server.
  - Nothing live is touched until the whole backup is proven. The file is decrypted and unpacked in
    one stream into a private C(0700) staging directory on the data directory's filesystem
    (C(<data_dir>/.nexus-restore-*)); only after the AES-GCM tag verified are the members checked
    (C(nexus.db) and the four key files present, no member outside nexusctl's layout, no link or
    device), the database holds NEXUS's schema and nothing else and passes C(PRAGMA quick_check) (or
    C(PRAGMA integrity_check), see O(integrity_check)), and, with O(key_password), the backup's keyring
    unlocks with that password.
  - The staging directory needs free space for the unpacked backup on the data directory's
    filesystem.
  - Then the current C(nexus.db), any C(nexus.db-wal), C(nexus.db-shm) or C(nexus.db-journal) and the
    whole keys directory are moved into a pre-restore directory and the staged files renamed into
    place. A stale WAL is therefore never replayed over the restored database (nexusctl's restore
    leaves it, and SQLite undoes the restore with it), and the restored keyring is exactly the
    backup's, without key files the backup does not have.
  - Each step is announced in a journal, kept where only the user running the module writes
    (C(<parent of data_dir>/.nexus-secrets-restore/), mode C(0700)). If the swap fails it
    is rolled back at once; if the process dies, the next run of this module finds the journal and
    undoes an unfinished swap or finishes a committed one before doing anything else, so the data
    directory always ends up holding either the complete previous state or the complete backup.
  - Nothing under the data directory, which the NEXUS service account writes, is reached through a
    symbolic link. A link at C(data), C(data/keys), C(nexus.db) or its C(-wal)/C(-shm)/C(-journal), a
    journal inside the data directory, or a state directory not private to the running user is
    refused with its path, and nothing is changed; so is an O(data_dir) that is itself a link. See
    C(docs/security.md).
  - Idempotent. When the data directory already holds exactly the backup's files (same SHA-256 for
    C(nexus.db) and each key file, modes C(0600)/C(0700), the requested owner and group) and no stale
    WAL, nothing is moved and the task reports no change.
  - Refuses to run, changing nothing, while a NEXUS server may be running over the data directory,
    whatever port it serves, unless O(force=true). On Linux every process holding C(nexus.db), its
    C(-wal), C(-shm) or C(-journal), or a key file open (C(/proc/PID/fd), compared by device and
    inode), memory-mapped, or locked (C(/proc/locks) and C(F_GETLK), the locks every SQLite
    connection holds; the files are only opened read-only) is named in the message with its pid
    and command, a stopped (C(SIGSTOP)) server included. Any HTTP answer on O(health_url) also
    counts as a running server.
extends_documentation_fragment:
  - nexus.secrets.data_dir
  - nexus.secrets.backup_password
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Performs every check (decrypts, unpacks and validates into staging, then removes it) and
      reports whether the restore would change the data directory.
  diff_mode:
    support: full
    details: Lists the files before and after (name, size, SHA-256); never their contents. Links are
      listed as links, never followed.
  platform:
    platforms: posix
options:
  src:
    description:
      - The encrypted backup file on the managed host.
      - Or a directory laid out like a NEXUS working directory (C(nexus.db), maybe its C(nexus.db-wal),
        and C(data/keys)), such as the RV(pre_restore_path) of an earlier restore, to roll back to it.
        The directory is copied, not moved, so it stays a restorable state; its WAL is checkpointed
        into the copy, and the copy goes through the same checks as a backup. O(backup_password) is
        not needed then.
    type: path
    required: true
  key_password:
    description:
      - The keyring password the server will be started with (E(NEXUS_KEY_PASSWORD)).
      - When given, the backup's keyring must unlock with it, or nothing is changed. NEXUS replaces a
        keyring it cannot unlock with new keys at start-up, which makes every restored secret
        unreadable; this check is the guard against that.
      - If not set, the value of the E(NEXUS_KEY_PASSWORD) environment variable is used; if that is not
        set either (an empty value counts as unset), the keyring is not checked
        (RV(keyring_verified=false)). A server run without E(NEXUS_KEY_PASSWORD) uses
        C(changeme-in-production); give that to check its keyring.
    type: str
  health_url:
    description:
      - The server's health URL. Any HTTP answer (even an error status) means a server is running and
        the restore is refused; only a refused connection counts as stopped.
      - A second signal only. Processes holding the data directory's files are found whatever port
        they serve (see the description).
    type: str
    default: http://127.0.0.1:9000/health
  force:
    description:
      - Restore even though a process holds the data directory's files or O(health_url) answers.
        Only for a server that is known to be stopped, or that serves another data directory.
      - What was overridden is still looked for, reported as a warning and returned in
        RV(overridden).
      - A server that really runs over the data directory undoes the restore with its next WAL
        checkpoint, or serves the old keys from memory.
    type: bool
    default: false
  pre_restore_backup:
    description:
      - Keep the replaced files in C(<data_dir>/pre-restore-YYYY-MM-DD-HHMMSS/) (returned as
        RV(pre_restore_path)). That directory is a complete NEXUS working directory (C(nexus.db) with
        its WAL as it was, and C(data/keys)), so nothing committed is lost.
      - With V(false) the replaced files are deleted once the restore has succeeded.
    type: bool
    default: true
  owner:
    description:
      - Owner (name or uid) of the restored files and of directories this module creates, usually
        C(nexus). Default is the user running the module.
    type: str
  integrity_check:
    description:
      - How deeply the backup's database is checked before it replaces the live one.
      - V(quick) runs C(PRAGMA quick_check) - every page read, the b-trees' structure, records and
        constraints checked - and skips only the comparison of every index with its table, which is
        most of C(PRAGMA integrity_check)'s time on a large audit log. The AES-GCM tag already proves
        the bytes are the ones the backup wrote; what the full check adds is whether the database was
        sound when it was backed up, which the backup role's verify step and the restore drill check
        where nobody waits (see the DR runbook).
      - V(full) runs C(PRAGMA integrity_check) here as well.
    type: str
    choices: [quick, full]
    default: quick
    version_added: 0.3.0
  group:
    description:
      - Group (name or gid) of the restored files and of directories this module creates.
    type: str
  stage_only:
    description:
      - Only decrypt, unpack and validate O(src) (every check of a restore, O(key_password) included)
        into a private staged copy in the root-only state directory
        (C(<parent of data_dir>/.nexus-secrets-restore/<data dir name>.staged-*)), and record it there
        with a manifest (the backup file's device, inode, size, modification time and SHA-256, hashed
        as it is decrypted, what was proven, and each staged file's size, inode and modification
        time). Nothing in
        the data directory is touched and the server may keep running; the task reports no change.
      - The next restore of the same O(src) into the same O(data_dir) then swaps that copy in instead
        of decrypting again (see O(use_staged_copy)), so that a recovery decrypts and checks the backup
        once, before the server is stopped. The disaster recovery role does so.
      - Any earlier staged copy of the data directory is removed first. The copy needs free space for
        the unpacked backup on the filesystem of O(data_dir)'s parent, which must be the data
        directory's own filesystem for the copy to be used (else RV(staged) is V(false) and the
        restore validates again).
      - In check mode the backup is validated in a temporary directory that is removed; nothing is
        recorded.
      - O(src) must be a backup file.
    type: bool
    default: false
    version_added: 0.4.0
  use_staged_copy:
    description:
      - Swap in the copy an earlier O(stage_only=true) run staged for this O(src) and O(data_dir),
        instead of decrypting the backup again, when it still matches its manifest - the backup file
        has the recorded device, inode, size, modification time and SHA-256 (it is read once more),
        the staged directory and files are the recorded ones, private to the running user, and the
        check they passed is at least O(integrity_check). The keyring is checked against
        O(key_password) again. Otherwise the copy is removed and the restore does its full pass
        (RV(staged_copy_note) says why).
      - With V(false) any staged copy is removed unused.
    type: bool
    default: true
    version_added: 0.4.0
notes:
  - Restored files are C(0600), the keys directory C(0700).
  - A missing O(data_dir) is created C(0700) (disaster recovery onto a fresh host); a missing parent
    of it is an error. O(db_path) and the keys directory must be on the same filesystem as O(data_dir).
  - A backup without C(nexus.db), without the complete keyring (C(master.key), C(signing.key),
    C(verify.key), C(age.key)) or whose database holds no tables (a hot nexusctl backup) is refused.
  - "To roll back: run this module with O(src) set to the pre-restore directory (see the examples).
    By hand: stop NEXUS, move C(nexus.db) and C(data/keys) out of O(data_dir), move C(nexus.db*) and
    C(data/keys) from the pre-restore directory back, start NEXUS with the old key password. The
    pre-restore directory is itself a NEXUS working directory: a server started in it
    (C(-db <it>/nexus.db)) with the old key password serves the previous state."
  - Only one restore runs at a time per parent directory of O(data_dir) (a private C(0600) lock file in
    C(<parent of data_dir>/.nexus-secrets-restore/), so that a data directory being created is covered
    too).
  - Prefer the password options (from Ansible Vault) over E(NEXUS_BACKUP_PASSWORD)/E(NEXUS_KEY_PASSWORD)
    set with the task's C(environment) keyword; Ansible shows such variables in the command it logs
    at C(-vvv).
seealso:
  - module: nexus.secrets.nexus_backup
  - module: nexus.secrets.nexus_backup_info
'''

EXAMPLES = r'''
- name: Restore the latest verified backup onto a stopped server
  nexus.secrets.nexus_restore:
    src: /var/backups/nexus/nexus-backup-2025-12-04-001500.tar.gz.enc
    backup_password: "{{ vault_nexus_backup_password }}"
    key_password: "{{ vault_nexus_key_password }}"
    owner: nexus
    group: nexus
  register: restored

- name: Disaster recovery onto a fresh host, passwords from the environment
  nexus.secrets.nexus_restore:
    src: /tmp/nexus-backup.tar.gz.enc
    data_dir: /var/lib/nexus
  environment:
    NEXUS_BACKUP_PASSWORD: "{{ vault_nexus_backup_password }}"
    NEXUS_KEY_PASSWORD: "{{ vault_nexus_key_password }}"

- name: Roll back to the state an earlier restore replaced
  nexus.secrets.nexus_restore:
    src: "{{ restored.pre_restore_path }}"
    key_password: "{{ vault_nexus_old_key_password }}"
    owner: nexus
    group: nexus

- name: Dry run with the file list
  nexus.secrets.nexus_restore:
    src: /var/backups/nexus/nexus-backup-2025-12-04-001500.tar.gz.enc
    backup_password: "{{ vault_nexus_backup_password }}"
  check_mode: true
  diff: true
'''

RETURN = r'''
members:
  description: The members of the backup archive (for a directory O(src), the files taken from it).
  returned: when the backup could be read
  type: list
  elements: dict
  contains:
    name:
      description: Member name in the archive.
      type: str
    size:
      description: Size in bytes (0 for the directory).
      type: int
    type:
      description: C(file) or C(dir).
      type: str
    mode:
      description: Permissions recorded in the archive, octal (restored files are always C(0600)).
      type: str
  sample: [{name: nexus.db, size: 45056, type: file, mode: '0644'}, {name: data/keys, size: 0, type: dir, mode: '0700'}]
secrets:
  description: Number of live (not deleted) secrets in the backup's database.
  returned: when the backup could be read
  type: int
  sample: 12
integrity:
  description: Result of the database check (RV(integrity_check) says which) on the backup's database.
  returned: when the backup could be read
  type: str
  sample: ok
integrity_check:
  description: Which check ran, V(quick) (C(PRAGMA quick_check)) or V(full) (C(PRAGMA integrity_check)).
  returned: when the backup could be read
  type: str
  sample: quick
keyring_verified:
  description: Whether the backup's keyring was proven to unlock with O(key_password).
  returned: when the backup could be read
  type: bool
  sample: true
pre_restore_path:
  description: The directory holding the replaced files; null when nothing was replaced or
    O(pre_restore_backup=false).
  returned: always
  type: str
  sample: /var/lib/nexus/pre-restore-2025-12-05-101500
removed:
  description: Stale SQLite files (C(nexus.db-wal), C(nexus.db-shm), C(nexus.db-journal)) taken away
    from the live database (kept in the pre-restore directory). In check mode, those that would be.
  returned: always
  type: list
  elements: str
  sample: [nexus.db-wal, nexus.db-shm]
recovered:
  description: What was done about an interrupted earlier restore found at the start
    (C(rolled_back) or C(completed)); null when there was none.
  returned: always
  type: str
  sample: null
holders:
  description:
    - Processes found holding the data directory's files (also returned when the restore is refused).
    - Empty when none was found.
  returned: always
  type: list
  elements: dict
  version_added: 0.3.0
  contains:
    pid:
      description: The process id; null for a lock whose owner this host cannot name (another PID
        namespace or host, or an open file description lock).
      type: int
    command:
      description: Its command line (C([comm]) when it has none), at most 256 characters.
      type: str
    files:
      description: Which files it holds (C(nexus.db), C(nexus.db-wal), C(keys/master.key), ...).
      type: list
      elements: str
    signals:
      description: How it holds them - C(open file), C(memory map), C(file lock).
      type: list
      elements: str
  sample: [{pid: 4242, command: /usr/local/bin/nexus -addr :39123 -storage sqlite -db /var/lib/nexus/nexus.db,
            files: [nexus.db, nexus.db-shm, nexus.db-wal], signals: [file lock, memory map, open file]}]
overridden:
  description: What O(force=true) overrode (processes holding the files, an answering O(health_url));
    empty when nothing was.
  returned: always
  type: list
  elements: str
  version_added: 0.3.0
  sample: ['the server answered http://127.0.0.1:9000/health with HTTP 200']
staged:
  description: With O(stage_only=true), whether a validated copy was recorded for the next restore.
  returned: when O(stage_only=true)
  type: bool
  sample: true
  version_added: 0.4.0
staged_paths:
  description: With O(stage_only=true), the staged copy's manifest and directory in the state directory,
    in the order to delete them to drop a copy no restore will use (the next stage or restore of the
    data directory removes it anyway).
  returned: when O(stage_only=true)
  type: list
  elements: str
  sample: [/var/lib/.nexus-secrets-restore/nexus.staged, /var/lib/.nexus-secrets-restore/nexus.staged-5f0c2a9e1b3d]
  version_added: 0.4.0
staged_copy_used:
  description: Whether a copy staged by an earlier O(stage_only=true) run was swapped in (the backup was
    not decrypted again).
  returned: always
  type: bool
  sample: true
  version_added: 0.4.0
staged_copy_note:
  description: Why a recorded staged copy was not used (also issued as a warning).
  returned: when a staged copy was found but not used
  type: str
  sample: the staged copy was not used (the backup /var/backups/nexus/x.tar.gz.enc changed since it was staged
    (SHA-256 differs)); the backup was validated again
  version_added: 0.4.0
timings:
  description: Seconds spent validating (decrypting, unpacking and checking the backup, or checking and
    taking a staged copy) and swapping the files in.
  returned: when the backup could be read
  type: dict
  contains:
    validate:
      description: Seconds until the backup (or staged copy) was proven.
      type: float
    swap:
      description: Seconds of the swap and its clean-up (0 when nothing was swapped).
      type: float
  sample: {validate: 7.92, swap: 0.41}
  version_added: 0.4.0
duration:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 1.42
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto, _health, _layout, _liveness, _restore, _swap
from ansible_collections.nexus.secrets.plugins.module_utils._env import empty_password_msg, password_option


def argument_spec():
    return dict(
        src=dict(type='path', required=True),
        backup_password=password_option('backup_password'),
        data_dir=dict(type='path', default='/var/lib/nexus'),
        db_path=dict(type='path'),
        keys_dir=dict(type='path'),
        key_password=password_option('key_password'),
        health_url=dict(type='str', default='http://127.0.0.1:9000/health'),
        force=dict(type='bool', default=False),
        pre_restore_backup=dict(type='bool', default=True),
        owner=dict(type='str'),
        group=dict(type='str'),
        integrity_check=dict(type='str', choices=['quick', 'full'], default='quick'),
        stage_only=dict(type='bool', default=False),
        use_staged_copy=dict(type='bool', default=True),
    )


def summary(result, check_mode):
    if 'staged' in result:
        return '%s %d secrets%s' % ('staged' if result['staged'] else 'validated', result['secrets'],
                                    ' (keyring verified)' if result['keyring_verified'] else '')
    if not result['changed']:
        return 'the data directory already holds exactly this backup'
    verb = 'would restore' if check_mode else 'restored'
    return '%s %d secrets%s' % (verb, result['secrets'],
                                ' (keyring verified)' if result['keyring_verified'] else '')


def live_server_guard(module, layout):
    """Refuse (changing nothing) while a process holds the data dir's files or the health URL answers.

    With ``force`` nothing is refused: what was overridden is warned about and returned.
    """
    params = module.params
    found = _liveness.scan(layout.db_path, layout.keys_dir)
    signals = []
    if found['in_use']:
        signals.append(_liveness.describe(found))
    state, detail = _health.probe(params['health_url'])
    if state != _health.STOPPED:
        signals.append(detail)
    for note in _liveness.notes(found):
        module.warn(note)
    guard = {'holders': found['holders'], 'overridden': []}
    if not signals:
        return guard
    if not params['force']:
        module.fail_json(msg='refusing to restore: a NEXUS server may be running (%s); stop it first, or set '
                             'force=true if you know better; nothing was changed' % '; '.join(signals),
                         changed=False, holders=found['holders'], overridden=[])
    guard['overridden'] = signals
    module.warn('force=true: restoring although %s' % '; '.join(signals))
    return guard


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    started = time.monotonic()
    _crypto.require_crypto(module)
    params = module.params
    if not os.path.isdir(params['src']):
        empty = empty_password_msg(params, ['backup_password'])
        if empty:
            module.fail_json(msg=empty)
        if not params['backup_password']:
            module.fail_json(msg='backup_password is required (or set NEXUS_BACKUP_PASSWORD)')
    layout = _layout.Layout(params['data_dir'], params['db_path'], params['keys_dir'])
    if params['stage_only']:
        # Only the state dir is written: the server may run meanwhile.
        try:
            result = _restore.stage_only(params['src'], params['backup_password'], layout,
                                         key_password=params['key_password'] or None, check_mode=module.check_mode,
                                         depth=params['integrity_check'])
        except _restore.RestoreFailed as exc:
            module.fail_json(msg=str(exc), changed=False, staged=False,
                             duration=round(time.monotonic() - started, 3))
        for warning in result.pop('warnings'):
            module.warn(warning)
        result.update(holders=[], overridden=[], msg=summary(result, module.check_mode),
                      duration=round(time.monotonic() - started, 3))
        module.exit_json(**result)
    guard = live_server_guard(module, layout)
    try:
        owner_ids = _restore.resolve_owner(params['owner'], params['group'])
        result = _restore.restore(params['src'], params['backup_password'], layout,
                                  key_password=params['key_password'] or None,
                                  keep_pre_restore=params['pre_restore_backup'], owner_ids=owner_ids,
                                  check_mode=module.check_mode, want_diff=module._diff,
                                  depth=params['integrity_check'], use_staged=params['use_staged_copy'])
    except _restore.RestoreFailed as exc:
        module.fail_json(msg=str(exc), changed=False, duration=round(time.monotonic() - started, 3))
    except _swap.RollbackFailed as exc:
        module.fail_json(msg=str(exc), changed=True, duration=round(time.monotonic() - started, 3))
    for warning in result.pop('warnings'):
        module.warn(warning)
    if result['changed'] and not result['keyring_verified']:
        module.warn('the restored keyring was not checked (no key_password): NEXUS started with a password '
                    'that does not unlock it replaces it with new keys, and every restored secret is lost')
    result.update(guard)
    result['msg'] = summary(result, module.check_mode)
    result['duration'] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
