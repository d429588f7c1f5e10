# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""REST client for the NEXUS API: one keep-alive session, auth, retries with backoff, typed errors.

Private to this collection; not a public API. No AnsibleModule logic here (see ``_connection.py``).

Retry policy: connection errors and 502/503/504 are retried with exponential backoff and jitter,
but only for requests that may safely be sent twice (GET, login); login and the listing also repeat a 500.
Writes (POST, PUT) are sent once here; callers that can prove a repeat is safe (the import re-checks
with a GET) repeat them in later passes.
"""

from __future__ import annotations

import random
import time
import traceback

from urllib.parse import quote

try:
    import requests
    from requests.adapters import HTTPAdapter
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where requests is missing
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

RETRY_STATUSES = frozenset((502, 503, 504))
# Login and the listing are single cheap requests every run needs: a passing 500 is repeated too.
RETRY_STATUSES_WITH_500 = RETRY_STATUSES | frozenset((500,))
API = '/api/v1'


class NexusApiError(Exception):
    """A failed API call: ``status`` is the HTTP status (None when no answer came), ``message`` the
    server's ``message`` (or a description of the transport failure). Never holds credentials."""

    def __init__(self, message, status=None, method=None, endpoint=None):
        self.status = status
        self.message = message
        self.method = method
        self.endpoint = endpoint
        super(NexusApiError, self).__init__(self.describe())

    @property
    def transient(self):
        """True when repeating the request may succeed (no answer, or 502/503/504)."""
        return self.status is None or self.status in RETRY_STATUSES

    @property
    def worth_another_pass(self):
        """Transient, or a 500 that may be passing: worth one more read, or one more write once a GET
        showed the first did not land (the modules' later passes)."""
        return self.transient or self.status == 500

    @property
    def auth_rejected(self):
        return self.status in (401, 403)

    def describe(self):
        where = '%s %s: ' % (self.method, self.endpoint) if self.method else ''
        if self.status is None:
            return '%s%s' % (where, self.message)
        return '%sHTTP %d: %s' % (where, self.status, self.message)


class AuthRejected(Exception):
    """Raised from a parallel worker when the server stops accepting our credentials mid-run, so the
    run stops instead of reporting every remaining secret as failed."""

    def __init__(self, error):
        super(AuthRejected, self).__init__(error.describe())
        self.error = error


def secret_endpoint(path):
    """``/api/v1/secrets/<path>`` with every segment percent-encoded.

    ``.`` and ``..`` segments are sent as ``%2E``/``%2E%2E``: a literal ``a/../b`` would be
    normalised by the HTTP library into ``b`` and silently read or overwrite another secret.
    """
    segments = []
    for segment in path.split('/'):
        if segment in ('.', '..'):
            segments.append(segment.replace('.', '%2E'))
        else:
            segments.append(quote(segment, safe=''))
    return API + '/secrets/' + '/'.join(segments)


def backoff_delay(attempt, base=0.25, cap=5.0, rng=random.random):
    """Exponential backoff with equal jitter: half of ``base * 2**attempt`` (capped) plus a random
    part of the same size, so parallel workers do not retry in lock-step."""
    ceiling = min(cap, base * (2 ** attempt))
    return ceiling / 2 + rng() * ceiling / 2


def _server_message(response):
    """The server's ``message`` (docs/nexus-behaviour.md §4 error body), else a short text of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get('message'):
        return str(body['message'])
    if 300 <= response.status_code < 400:
        return 'redirected to %s (the server does not route this path)' % response.headers.get('Location', '?')
    text = (response.text or '').strip()
    return text[:200] if text else (response.reason or 'no message')


class NexusClient(object):
    """One session per module run. ``pool_size`` should be at least the number of worker threads."""

    def __init__(self, url, token=None, api_key=None, username=None, password=None, timeout=30,
                 validate_certs=True, ca_path=None, retries=3, pool_size=8, backoff_base=0.25,
                 sleep=time.sleep):
        if not HAS_REQUESTS:
            raise RuntimeError('the requests library is required')
        self.url = url.rstrip('/')
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff_base = backoff_base
        self._sleep = sleep
        self._username = username
        self._password = password
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, int(pool_size)))
        self.session.mount('http://', adapter)
        self.session.mount('https://', adapter)
        # Proxy variables are read once, here: with trust_env requests scans os.environ twice on
        # every request, a quarter of the client's time per secret. Auth never comes from .netrc.
        self.session.proxies.update(requests.utils.get_environ_proxies(self.url))
        self.session.trust_env = False
        # Passed with every request: requests lets REQUESTS_CA_BUNDLE override a session-level verify.
        self._verify = (ca_path or True) if validate_certs else False
        self.session.headers['Accept'] = 'application/json'
        if token:
            self.session.headers['Authorization'] = 'Bearer ' + token
        elif api_key:
            self.session.headers['X-API-Key'] = api_key

    # -- transport ---------------------------------------------------------------------------
    def _send(self, method, endpoint, body=None, params=None):
        try:
            return self.session.request(method, self.url + endpoint, json=body, params=params,
                                        timeout=self.timeout, allow_redirects=False, verify=self._verify)
        except requests.exceptions.SSLError as exc:
            raise NexusApiError('TLS error talking to %s: %s' % (self.url, _reason(exc)),
                                method=method, endpoint=endpoint)
        except requests.exceptions.Timeout:
            raise NexusApiError('no answer from %s within %ss' % (self.url, self.timeout),
                                method=method, endpoint=endpoint)
        except requests.exceptions.RequestException as exc:
            raise NexusApiError('cannot reach %s: %s' % (self.url, _reason(exc)),
                                method=method, endpoint=endpoint)

    def request(self, method, endpoint, body=None, params=None, expected=(200,), retry=None,
                retry_statuses=RETRY_STATUSES):
        """Send one request; return the decoded JSON body (None when empty).

        ``retry`` defaults to True for GET only: then connection errors and ``retry_statuses`` are
        repeated. Raises NexusApiError for unexpected statuses.
        """
        if retry is None:
            retry = method == 'GET'
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = self._send(method, endpoint, body, params)
                if response.status_code not in expected:
                    raise NexusApiError(_server_message(response), response.status_code, method, endpoint)
            except NexusApiError as exc:
                if not (exc.status is None or exc.status in retry_statuses) or attempt + 1 >= attempts:
                    raise
                self._sleep(backoff_delay(attempt, self.backoff_base))
                continue
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise NexusApiError('answer is not JSON', response.status_code, method, endpoint)
        raise AssertionError('unreachable')  # pragma: no cover

    def pause(self, attempt):
        """Sleep the backoff for ``attempt`` (for callers that retry writes themselves)."""
        self._sleep(backoff_delay(attempt, self.backoff_base))

    # -- auth ----------------------------------------------------------------------------------
    def login(self):
        """Exchange username/password for a JWT and use it for every later request."""
        body = {'username': self._username, 'password': self._password}
        # Login only issues a token: repeating it is harmless, so it is retried like a GET.
        answer = self.request('POST', API + '/auth/login', body=body, retry=True,
                              retry_statuses=RETRY_STATUSES_WITH_500)
        self._password = None
        token = (answer or {}).get('token')
        if not token:
            raise NexusApiError('login answer holds no token', 200, 'POST', API + '/auth/login')
        self.session.headers['Authorization'] = 'Bearer ' + token

    # -- secrets -------------------------------------------------------------------------------
    def list_secrets(self, prefix=None):
        """Every live secret's listing entry (no values). ``prefix`` is passed to the server as is."""
        params = {'prefix': prefix} if prefix else None
        answer = self.request('GET', API + '/secrets', params=params,
                              retry_statuses=RETRY_STATUSES_WITH_500) or {}
        secrets = answer.get('secrets')
        if not isinstance(secrets, list):
            raise NexusApiError('listing holds no "secrets" list', 200, 'GET', API + '/secrets')
        return secrets

    def get_secret(self, path):
        """The secret with its value; NexusApiError (404 when absent) otherwise.

        The answer must be about ``path``: a server (or proxy) that resolves the URL to another
        secret is reported instead of trusted.
        """
        endpoint = secret_endpoint(path)
        answer = self.request('GET', endpoint)
        if not isinstance(answer, dict) or answer.get('path') != path:
            raise NexusApiError('answer is about another path', 200, 'GET', endpoint)
        return answer

    def find_secret(self, path):
        """Like ``get_secret`` but None when the server answers 404."""
        try:
            return self.get_secret(path)
        except NexusApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_secret(self, path, value, metadata=None):
        """POST once (no retry: a repeat of a create that reached the server answers 500/409)."""
        body = {'path': path, 'value': value}
        if metadata:
            body['metadata'] = metadata
        return self.request('POST', API + '/secrets', body=body, expected=(200, 201), retry=False)

    def update_secret(self, path, value, metadata):
        """PUT once; always creates a new version on the server. ``metadata={}`` clears it."""
        body = {'value': value, 'metadata': metadata or {}}
        return self.request('PUT', secret_endpoint(path), body=body, retry=False)

    def close(self):
        self.session.close()


def _reason(exc):
    """A short transport-error reason (no headers, so no credentials; api keys never go in URLs)."""
    inner = exc.args[0] if exc.args else None
    detail = getattr(inner, 'reason', None) or inner
    if detail is None:
        return exc.__class__.__name__
    # urllib3 prefixes "<HTTPConnection object at 0x...>: " to connection errors.
    text = str(detail).split('>: ', 1)[-1]
    return '%s (%s)' % (exc.__class__.__name__, text[:160])
