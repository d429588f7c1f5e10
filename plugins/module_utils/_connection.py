# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module that talks to a NEXUS server.

The options are documented once in the ``nexus.secrets.connection`` doc fragment; modules build
their argument spec with ``nexus_argument_spec(...)`` and pass ``CONNECTION_MODULE_KWARGS`` to
AnsibleModule, then get a logged-in client from ``client_from_module(module)``.

Credentials are bound late, like community.hashi_vault's options: the argument spec has no
environment fallback for them, so ansible-core's checks (mutually exclusive options) see only what the
task set, and ``resolve_credentials`` fills the rest from the environment after validation. An
explicit credential always beats the environment; among environment variables NEXUS_TOKEN wins, then
NEXUS_API_KEY, then NEXUS_USERNAME/NEXUS_PASSWORD (the order the doc fragment documents).

Environment values follow ``_env``'s rule (an empty variable counts as unset). This file imports the
REST client only inside ``client_from_module``.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.nexus.secrets.plugins.module_utils._env import nonempty_env, nonempty_env_fallback

DEFAULT_URL = 'http://127.0.0.1:9000'


# Credential options and the environment variable each falls back to, after validation.
CREDENTIAL_ENV = (('token', 'NEXUS_TOKEN'), ('api_key', 'NEXUS_API_KEY'),
                  ('username', 'NEXUS_USERNAME'), ('password', 'NEXUS_PASSWORD'))

CONNECTION_OPTIONS = dict(
    url=dict(type='str', default=DEFAULT_URL, fallback=(nonempty_env_fallback, ['NEXUS_URL'])),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
    token=dict(type='str', no_log=True),
    api_key=dict(type='str', no_log=True),
    timeout=dict(type='int', default=30),
    validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['NEXUS_VALIDATE_CERTS'])),
    ca_path=dict(type='path'),
    retries=dict(type='int', default=3),
)

# Passed to AnsibleModule(**...) next to the argument spec. They apply to the task's own options
# only; "username requires password" is checked once the environment has been read.
CONNECTION_MODULE_KWARGS = dict(
    mutually_exclusive=[('token', 'api_key', 'username'), ('token', 'api_key', 'password')],
)


class CredentialError(ValueError):
    """The credentials cannot be used as given; the message says what to set."""


def _method_of(found):
    """The method one source of credentials (the options, or the environment) names, in order; None."""
    if found['token']:
        return 'token'
    if found['api_key']:
        return 'api_key'
    if found['username'] or found['password']:
        return 'username/password'
    return None


def resolve_credentials(params, environ=None):
    """``(method, creds)`` once options are validated: ``creds`` holds token, api_key, username and
    password (None when unused) for exactly one method, or ``(None, {})`` when there is none.

    Explicit options beat the environment: when the task sets any credential, that method is used and
    the environment only completes a username/password pair. Otherwise the environment decides,
    NEXUS_TOKEN first, then NEXUS_API_KEY, then NEXUS_USERNAME/NEXUS_PASSWORD. Empty values count as
    unset. Raises CredentialError for half a username/password pair.
    """
    given = dict((name, params.get(name) or None) for name, dummy in CREDENTIAL_ENV)
    env = dict((name, nonempty_env([var], environ)) for name, var in CREDENTIAL_ENV)
    creds = dict(token=None, api_key=None, username=None, password=None)
    source = given if _method_of(given) else env
    method = _method_of(source)
    if method is None:
        return None, {}
    if method in ('token', 'api_key'):
        creds[method] = source[method]
    if method == 'username/password':
        creds['username'] = given['username'] or env['username']
        creds['password'] = given['password'] or env['password']
        if not creds['username']:
            raise CredentialError('password is set but username is not (set username or NEXUS_USERNAME)')
        if not creds['password']:
            raise CredentialError('username is set but password is not (set password or NEXUS_PASSWORD)')
    return method, creds


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


def bind_credentials(module):
    """Resolve the credentials (``resolve_credentials``) into ``module.params``, marking the values
    taken from the environment no_log as ansible-core does for fallbacks; ``fail_json`` when unusable."""
    try:
        method, creds = resolve_credentials(module.params)
    except CredentialError as exc:
        module.fail_json(msg=str(exc))
    if method is None:
        module.fail_json(msg='no credentials: set token, api_key, or username and password '
                             '(or NEXUS_TOKEN, NEXUS_API_KEY, NEXUS_USERNAME/NEXUS_PASSWORD)')
    for name in ('token', 'api_key', 'password'):
        if creds[name]:
            module.no_log_values.add(creds[name])
    module.params.update(creds)
    return method


def client_from_module(module, pool_size=1):
    """A ready client for the module's connection options, or ``fail_json`` with a clear ``msg``.

    Username/password logins happen here, so bad credentials fail before any work starts.
    """
    from ansible_collections.nexus.secrets.plugins.module_utils._api import (
        HAS_REQUESTS,
        REQUESTS_IMPORT_ERROR,
        NexusApiError,
        NexusClient,
    )
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
    params = module.params
    url = (params['url'] or '').strip()
    if not url.startswith(('http://', 'https://')):
        module.fail_json(msg='url must start with http:// or https:// (got %r)' % url)
    method = bind_credentials(module)
    if params['timeout'] < 1:
        module.fail_json(msg='timeout must be 1 or more seconds (got %d)' % params['timeout'])
    if params['retries'] < 0:
        module.fail_json(msg='retries must be 0 or more (got %d)' % params['retries'])
    try:
        client = NexusClient(
            url, token=params['token'], api_key=params['api_key'], username=params['username'],
            password=params['password'], timeout=params['timeout'], validate_certs=params['validate_certs'],
            ca_path=params['ca_path'], retries=params['retries'], pool_size=pool_size)
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
