# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file options (mode, owner, group, SELinux context, attributes) of the modules that write files.

They are ansible-core's common file arguments: a module passes ``add_file_common_args=True`` to
AnsibleModule, documents the ``ansible.builtin.files`` fragment, and after its atomic write calls
``apply_file_args``, which is ansible-core's ``set_fs_attributes_if_different``. So they mean what
they mean in every other module: octal strings, symbolic modes (``u=rw,g=r``), a YAML integer taken
as the number it is. What a module writes is still ``0600`` from its first byte; the options are
applied to the finished file. ``mode`` keeps a default (``mode_option``), because a file that holds
secrets must not follow the umask when the task sets no mode.

Private to this collection.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

# What a symbolic mode is checked against before the file exists: a new private file.
_NEW_FILE = os.stat_result((stat.S_IFREG | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0))


def mode_option(default='0600'):
    """The ``mode`` option with this collection's default (ansible-core's has none)."""
    return dict(type='raw', default=default)


def file_args_problem(params):
    """Why the owner, group or mode in ``params`` cannot be applied on this host, or None.

    Checked before anything is written, so bad input changes nothing; ``apply_file_args`` applies
    them afterwards the way ansible-core does (a numeric owner or group is an id).
    """
    for option, lookup in (('owner', pwd.getpwnam), ('group', grp.getgrnam)):
        value = params.get(option)
        if value and not value.isdigit():
            try:
                lookup(value)
            except KeyError:
                return '%s %r does not exist on this host' % (option, value)
    mode = params.get('mode')
    if mode is None:
        return None
    try:
        value = mode if isinstance(mode, int) else int(mode, 8)
    except ValueError:
        try:
            AnsibleModule._symbolic_mode_to_octal(_NEW_FILE, mode)
        except Exception:  # pylint: disable=broad-except
            return ("mode must be an octal number such as '0640' or a symbolic mode such as u=rw,g=r, got %r"
                    % (mode,))
        return None
    if value != stat.S_IMODE(value):
        return 'mode must be between 0000 and 07777 (permission bits only), got %r' % (mode,)
    return None


def apply_file_args(module, paths, changed, diff=None):
    """Give each of ``paths`` the task's file options; True when any changed (or, in check mode, would).

    In check mode nothing is touched, and a path that does not exist yet counts as a change.
    ``diff`` (a dict) receives ansible-core's ``before``/``after`` of what differs.
    """
    for path in paths:
        file_args = module.load_file_common_arguments(module.params, path=path)
        changed = module.set_fs_attributes_if_different(file_args, changed, diff=diff)
    return changed
