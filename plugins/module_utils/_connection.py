# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module that talks to a NEXUS server.

The options are documented once in the ``nexus.secrets.connection`` doc fragment; modules build
their argument spec with ``nexus_argument_spec(...)`` and pass ``CONNECTION_MODULE_KWARGS`` to
AnsibleModule, then get a logged-in client from ``client_from_module(module)``.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleFallbackNotFound, env_fallback, missing_required_lib

from ansible_collections.nexus.secrets.plugins.module_utils._api import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    NexusApiError,
    NexusClient,
)

DEFAULT_URL = 'http://127.0.0.1:9000'


def nonempty_env_fallback(*names):
    """Like env_fallback, but an empty variable counts as unset.

    AWX injects every variable of a credential type, the unset inputs as '' (docs/awx): an empty
    NEXUS_TOKEN must not clash with NEXUS_USERNAME/NEXUS_PASSWORD.
    """
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound


CONNECTION_OPTIONS = dict(
    url=dict(type='str', default=DEFAULT_URL, fallback=(nonempty_env_fallback, ['NEXUS_URL'])),
    username=dict(type='str', fallback=(nonempty_env_fallback, ['NEXUS_USERNAME'])),
    password=dict(type='str', no_log=True, fallback=(nonempty_env_fallback, ['NEXUS_PASSWORD'])),
    token=dict(type='str', no_log=True, fallback=(nonempty_env_fallback, ['NEXUS_TOKEN'])),
    api_key=dict(type='str', no_log=True, fallback=(nonempty_env_fallback, ['NEXUS_API_KEY'])),
    timeout=dict(type='int', default=30),
    validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['NEXUS_VALIDATE_CERTS'])),
    ca_path=dict(type='path'),
    retries=dict(type='int', default=3),
)

# Passed to AnsibleModule(**...) next to the argument spec.
CONNECTION_MODULE_KWARGS = dict(
    mutually_exclusive=[('token', 'api_key', 'username'), ('token', 'api_key', 'password')],
    required_together=[('username', 'password')],
)


def nexus_argument_spec(**extra):
    """The connection options plus a module's own ``extra`` options (which must not clash)."""
    spec = dict((name, dict(opts)) for name, opts in CONNECTION_OPTIONS.items())
    clash = set(spec) & set(extra)
    if clash:
        raise ValueError('options %s clash with the connection options' % ', '.join(sorted(clash)))
    spec.update(extra)
    return spec


def auth_method(params):
    if params.get('token'):
        return 'token'
    if params.get('api_key'):
        return 'api_key'
    if params.get('username'):
        return 'username/password'
    return None


def client_from_module(module, pool_size=1):
    """A ready client for the module's connection options, or ``fail_json`` with a clear ``msg``.

    Username/password logins happen here, so bad credentials fail before any work starts.
    """
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
    params = module.params
    url = (params['url'] or '').strip()
    if not url.startswith(('http://', 'https://')):
        module.fail_json(msg='url must start with http:// or https:// (got %r)' % url)
    if auth_method(params) is None:
        module.fail_json(msg='no credentials: set token, api_key, or username and password '
                             '(or NEXUS_TOKEN, NEXUS_API_KEY, NEXUS_USERNAME/NEXUS_PASSWORD)')
    if params['timeout'] < 1:
        module.fail_json(msg='timeout must be 1 or more seconds (got %d)' % params['timeout'])
    if params['retries'] < 0:
        module.fail_json(msg='retries must be 0 or more (got %d)' % params['retries'])
    method = auth_method(params)
    # Only the chosen credential is used: an env fallback for another method never mixes in.
    try:
        client = NexusClient(
            url, token=params['token'] if method == 'token' else None,
            api_key=params['api_key'] if method == 'api_key' else None,
            username=params['username'], password=params['password'], timeout=params['timeout'],
            validate_certs=params['validate_certs'], ca_path=params['ca_path'],
            retries=params['retries'], pool_size=pool_size)
    except (ValueError, IOError, OSError) as exc:  # an unusable url, proxy or ca_path
        module.fail_json(msg='cannot talk to %s: %s' % (url, exc))
    if method == 'username/password':
        try:
            client.login()
        except NexusApiError as exc:
            module.fail_json(msg='login as %r at %s failed: %s' % (params['username'], url, exc.describe()),
                             status=exc.status)
    return client


def api_failure_msg(action, exc, params):
    """A failure ``msg`` that says what to check when the server rejected our credentials."""
    msg = '%s: %s' % (action, exc.describe())
    if exc.status == 401:
        msg += ' (the %s was rejected: expired, revoked or wrong)' % auth_method(params)
    return msg
