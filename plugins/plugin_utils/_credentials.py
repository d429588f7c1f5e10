# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials from the controller's environment for the modules that take them (action side).

The modules' environment fallbacks (NEXUS_BACKUP_PASSWORD, NEXUS_TOKEN, ...) read the *managed
host's* environment. An AWX credential, ``ansible-playbook`` run with ``NEXUS_*`` exported, or a CI
job set them on the *controller*. Each module's action plugin fills a credential option that the
task leaves unset, and that the task's ``environment:`` does not set either, from the controller's
environment, so both places work. Values are passed to the module as arguments (never argv, never
logged: the modules declare them ``no_log``).

Precedence, highest first: the task's option (or ``module_defaults``), the task's ``environment:``,
the controller's environment, the managed host's own environment. The connection credentials are
filled as one choice (token, else API key, else username and password) and only when the task
sets none of them, so a task's own credential never clashes with one from the controller.

Private to this collection.
"""

from __future__ import annotations

import os
import re

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# Connection options and their variables, in the order a credential is chosen (docs: connection fragment).
CONNECTION_CREDENTIALS = (('token', 'NEXUS_TOKEN'), ('api_key', 'NEXUS_API_KEY'),
                          ('username', 'NEXUS_USERNAME'), ('password', 'NEXUS_PASSWORD'))
CONNECTION_SETTINGS = (('url', 'NEXUS_URL'),)
# Every variable this layer may read, with the option it fills (for messages).
ALL_VARIABLES = {
    'backup_password': 'NEXUS_BACKUP_PASSWORD',
    'key_password': 'NEXUS_KEY_PASSWORD',
    'export_password': 'NEXUS_EXPORT_PASSWORD',
    'url': 'NEXUS_URL',
    'token': 'NEXUS_TOKEN',
    'api_key': 'NEXUS_API_KEY',
    'username': 'NEXUS_USERNAME',
    'password': 'NEXUS_PASSWORD',
}
_MISSING_RE = re.compile(r'^missing required arguments: (.+)$')


def _set(value):
    return value is not None and value != ''


def fill_credentials(args, controller_env, task_env, options, connection=False):
    """``(new args, names of the variables used)``: ``args`` with unset credentials taken from ``controller_env``.

    ``options`` maps the module's own credential options to their variables; ``connection`` says the
    module takes the shared connection options. ``task_env`` is the task's ``environment:``, which
    the module's own fallbacks read on the host and which therefore wins over the controller.
    """
    args = dict(args)
    used = []

    def given(option, variable):
        return _set(args.get(option)) or _set(task_env.get(variable))

    pairs = list(options.items())
    if connection:
        pairs += list(CONNECTION_SETTINGS)
    for option, variable in pairs:
        if not given(option, variable) and _set(controller_env.get(variable)):
            args[option] = controller_env[variable]
            used.append(variable)
    if connection and not any(given(option, variable) for option, variable in CONNECTION_CREDENTIALS):
        env = dict((option, controller_env.get(variable)) for option, variable in CONNECTION_CREDENTIALS)
        if _set(env['token']):
            chosen = ('token',)
        elif _set(env['api_key']):
            chosen = ('api_key',)
        elif _set(env['username']) and _set(env['password']):
            chosen = ('username', 'password')
        else:
            chosen = ()
        for option in chosen:
            args[option] = env[option]
            used.append(dict(CONNECTION_CREDENTIALS)[option])
    elif connection and not (given('token', 'NEXUS_TOKEN') or given('api_key', 'NEXUS_API_KEY')):
        # Half a login on the task (say username, with the password in the AWX credential): the
        # controller completes the pair, as the module completes it from the host's environment.
        for option, variable in CONNECTION_CREDENTIALS[2:]:
            if not given(option, variable) and _set(controller_env.get(variable)):
                args[option] = controller_env[variable]
                used.append(variable)
    return args, used


def explain_missing(result, options, connection=False):
    """Name the variable to set in a module's "missing required arguments" message (in place)."""
    msg = result.get('msg')
    if not result.get('failed') or not isinstance(msg, str):
        return result
    match = _MISSING_RE.match(msg.strip())
    known = dict(options)
    if connection:
        known.update(ALL_VARIABLES)
    if connection and msg.startswith('no credentials:') and 'controller' not in msg:
        result['msg'] = msg + ('; the NEXUS_* variables may be set on the task (environment:) or in the '
                               'controller\'s environment, where an AWX credential injects them')
        return result
    if match:
        hints = ['%s (or %s)' % (name, known[name]) for name in (part.strip() for part in match.group(1).split(','))
                 if name in known]
        if hints:
            result['msg'] = ('%s. Set the option on the task, or the variable in the task\'s environment or in the '
                             'controller\'s environment (an AWX credential injects it there): %s'
                             % (msg.rstrip('.'), ', '.join(hints)))
    return result


class CredentialsAction(ActionBase):
    """Run the module of the same name with credentials filled from the controller's environment."""

    _supports_check_mode = True
    _supports_async = True

    # option -> environment variable, for the module's own credential options
    CREDENTIAL_OPTIONS = {}
    # whether the module takes the shared connection options (url, token, api_key, username, password)
    CONNECTION = False

    def run(self, tmp=None, task_vars=None):
        result = super(CredentialsAction, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect

        task_env = {}
        self._compute_environment_string(task_env)
        module_args, dummy = fill_credentials(self._task.args, os.environ, task_env, self.CREDENTIAL_OPTIONS,
                                              self.CONNECTION)
        wrap_async = self._task.async_val and not self._connection.has_native_async
        module_result = self._execute_module(module_args=module_args, task_vars=task_vars, wrap_async=wrap_async)
        result = merge_hash(result, explain_missing(module_result, self.CREDENTIAL_OPTIONS, self.CONNECTION))

        if not wrap_async:
            # remove a temporary path we created
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
