# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One rule for options read from the environment: an empty variable counts as unset.

AWX injects every variable of a credential type, the unset inputs as '' (docs/awx/README.md): an empty
NEXUS_BACKUP_PASSWORD must not become a password, nor an empty NEXUS_TOKEN clash with
NEXUS_USERNAME/NEXUS_PASSWORD. Every module's environment fallback goes through
``nonempty_env_fallback``; the connection credentials, bound after validation, through
``nonempty_env``. A password option given explicitly as '' is therefore never the environment's
doing: ``empty_password_msg`` names it where a password is needed.

Neutral ground: the files side and the REST side both import it, and it imports neither.
Private to this collection.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleFallbackNotFound

# Password options and the variable each falls back to (docs: the modules' option descriptions).
PASSWORD_VARIABLES = {
    'backup_password': 'NEXUS_BACKUP_PASSWORD',
    'new_backup_password': 'NEXUS_NEW_BACKUP_PASSWORD',
    'key_password': 'NEXUS_KEY_PASSWORD',
    'export_password': 'NEXUS_EXPORT_PASSWORD',
    'password': 'NEXUS_PASSWORD',
}


def nonempty_env(names, environ=None):
    """The value of the first variable of ``names`` that is set and not empty, or None."""
    environ = os.environ if environ is None else environ
    for name in names:
        if environ.get(name):
            return environ[name]
    return None


def nonempty_env_fallback(*names):
    """Like ansible-core's env_fallback, but an empty variable counts as unset."""
    value = nonempty_env(names)
    if value is None:
        raise AnsibleFallbackNotFound
    return value


def password_option(option, **extra):
    """The argument spec of a password option: no_log, falling back to its variable when not empty."""
    spec = dict(type='str', no_log=True, fallback=(nonempty_env_fallback, [PASSWORD_VARIABLES[option]]))
    spec.update(extra)
    return spec


def empty_password_msg(params, options):
    """A failure message naming the options of ``options`` given as '' (explicitly: an empty variable
    never fills an option), or None when there is none."""
    empty = [option for option in options if params.get(option) == '']
    if not empty:
        return None
    return '; '.join('%s must not be empty (leave it unset to read %s)' % (option, PASSWORD_VARIABLES[option])
                     for option in empty)
