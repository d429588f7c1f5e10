#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: nexus_datadir_holders
short_description: List the processes that hold a NEXUS data directory's files
version_added: 0.3.0
author:
  - nexus.secrets maintainers (!UNKNOWN)
description:
  - Finds every process that holds the database (C(nexus.db), its C(-wal), C(-shm) and
    C(-journal)) or a key file of a NEXUS data directory, whatever port it serves and even when it
    is stopped (C(SIGSTOP)), and names it (pid and command).
  - On Linux it looks at each process's open files (C(/proc/PID/fd), compared by device and inode,
    not only by path) and memory maps (C(/proc/PID/maps)), and at file locks (C(/proc/locks), and
    C(F_GETLK) on each file, which finds the lock every open SQLite connection holds without taking
    one). The files are only opened read-only; no SQLite connection is made, so nothing is written
    or checkpointed. The process running this module never counts itself.
  - Only reads. Use it after stopping a server to see that it is really gone (the
    M(nexus.secrets.nexus_restore) and M(nexus.secrets.nexus_keyring_rotate) modules refuse to run
    while any holder is left). Combine with C(until) to wait.
extends_documentation_fragment:
  - nexus.secrets.data_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; the same answer in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it as root (C(become)). Without root, processes of other users cannot be inspected; they
    are counted in RV(uninspected), and their file locks are still found.
  - Without C(/proc/PID/fd) (not Linux) only file locks are checked (RV(supported=false)).
seealso:
  - module: nexus.secrets.nexus_restore
  - module: nexus.secrets.nexus_keyring_rotate
'''

EXAMPLES = r'''
- name: Wait until no process holds the NEXUS files any more
  nexus.secrets.nexus_datadir_holders:
    data_dir: /var/lib/nexus
  register: holders
  until: not holders.in_use
  retries: 30
  delay: 1

- name: Show who holds them
  ansible.builtin.debug:
    msg: "{{ holders.msg }}"
'''

RETURN = r'''
in_use:
  description: Whether any process holds one of the files.
  returned: always
  type: bool
  sample: false
holders:
  description: The processes holding the files, by pid.
  returned: always
  type: list
  elements: dict
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
files:
  description: The files looked for that exist.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/nexus/nexus.db, /var/lib/nexus/data/keys/master.key]
uninspected:
  description: Processes whose open files could not be read (other users', without root).
  returned: always
  type: int
  sample: 0
supported:
  description: Whether open files could be checked at all (C(/proc/PID/fd) exists); locks always are.
  returned: always
  type: bool
  sample: true
msg:
  description: One line naming every holder (pid, command, files), or saying that there is none.
  returned: always
  type: str
  sample: "pid 4242 (/usr/local/bin/nexus -addr :39123 ...) holds nexus.db, nexus.db-wal [open file]"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _liveness


def main():
    module = AnsibleModule(
        argument_spec=dict(
            data_dir=dict(type='path', default='/var/lib/nexus'),
            db_path=dict(type='path'),
            keys_dir=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    layout = _layout.Layout(module.params['data_dir'], module.params['db_path'], module.params['keys_dir'])
    found = _liveness.scan(layout.db_path, layout.keys_dir)
    for note in _liveness.notes(found):
        module.warn(note)
    if found['in_use']:
        msg = _liveness.describe(found)
    else:
        msg = 'no process holds the files of %s' % layout.data_dir
    module.exit_json(changed=False, msg=msg, **found)


if __name__ == '__main__':
    main()
