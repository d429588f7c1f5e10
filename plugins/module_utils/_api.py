# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""REST client for the NEXUS API: keep-alive connections, auth, retries with backoff, typed errors.

Private to this collection; not a public API. No AnsibleModule logic here (see ``_connection.py``).

Transport: ``http.client`` connections kept alive in a small pool (one per parallel worker), so a bulk
export or import spends little CPU per request. ``requests`` is only used for what it decided before:
the proxy for the URL from the environment (``NO_PROXY`` included) and the default CA bundle.

Bounds (a server is not trusted to be well-behaved): every read from the network waits at most
``timeout`` seconds and a whole request at most ``DEADLINE_FACTOR * timeout``; an answer larger than
``max_response_bytes`` is refused, and so is a compressed one (the client asks for none). Text taken
from an answer is masked before it reaches an error: the values and credentials a request carried,
and long tokens, never appear in ``NexusApiError``.

Retry policy: connection errors and 502/503/504 are retried with exponential backoff and jitter,
but only for requests that may safely be sent twice (GET, login); login and the listing also repeat a 500.
Writes (POST, PUT) are sent once here; callers that can prove a repeat is safe (the import re-checks
with a GET) repeat them in later passes.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import random
import re
import select
import socket
import ssl
import time
import traceback

from urllib.parse import quote, unquote, urlencode, urlsplit

try:
    from requests.certs import where as _default_ca_bundle
    from requests.utils import get_environ_proxies, select_proxy
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where requests is missing
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

RETRY_STATUSES = frozenset((502, 503, 504))
# Login and the listing are single cheap requests every run needs: a passing 500 is repeated too.
RETRY_STATUSES_WITH_500 = RETRY_STATUSES | frozenset((500,))
API = '/api/v1'

# The largest answer read: a listing of 100,000 secrets with metadata is about 40 MB.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# One request (connect, send, whole answer) may take at most this many times ``timeout``.
DEADLINE_FACTOR = 3
USER_AGENT = 'nexus.secrets'
REDACTED = '<redacted>'
# NEXUS's own error messages (docs/nexus-behaviour.md §4): shown as they are. Any other text from an
# answer is masked (sent values, credentials, long tokens) and shortened.
KNOWN_MESSAGES = frozenset((
    'authentication required', 'invalid credentials', 'username and password are required',
    'value is required', 'path is required', 'invalid request body', 'failed to create secret',
    'secret already exists', 'secret not found', 'secret path is required', 'failed to decrypt secret',
    'failed to list secrets', 'failed to get secret', 'failed to update secret',
))
_LONG_TOKEN = re.compile(r'[^\s"\'<>(),;]{32,}')
_MAX_MESSAGE = 200
_READ_CHUNK = 64 * 1024


class NexusApiError(Exception):
    """A failed API call: ``status`` is the HTTP status (None when no answer came), ``message`` the
    server's ``message`` (or a description of the transport failure). Never holds credentials or the
    values a request carried."""

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


class _Refused(Exception):
    """An answer the client will not read (too large, compressed): the connection is dropped."""

    def __init__(self, message, status):
        super(_Refused, self).__init__(message)
        self.message = message
        self.status = status


class _DeadlinePassed(Exception):
    """The whole request took longer than its deadline (a server trickling its answer)."""


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


def redact(text, sensitive=()):
    """``text`` from an answer, safe to show: NEXUS's known messages as they are; anything else with
    every ``sensitive`` string (and its JSON-escaped form) and every long token masked, shortened."""
    text = str(text)
    if text in KNOWN_MESSAGES:
        return text
    for value in sensitive:
        if not value:
            continue
        for form in (value, json.dumps(value)[1:-1], quote(value, safe='')):
            if form in text:
                text = text.replace(form, REDACTED)
    text = _LONG_TOKEN.sub(REDACTED, text)
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + '...'
    return text


def _sensitive_in(body):
    """The strings of a request body that must never be echoed back: values and passwords."""
    if not isinstance(body, dict):
        return ()
    return tuple(body[key] for key in ('value', 'password') if isinstance(body.get(key), str))


def _server_message(status, headers, data, sensitive):
    """The server's ``message`` (docs/nexus-behaviour.md §4 error body), else a short text of the body;
    always through ``redact``."""
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get('message'):
        return redact(body['message'], sensitive)
    if 300 <= status < 400:
        return 'redirected to %s (the server does not route this path)' % redact(
            headers.get('location') or '?', sensitive)
    text = data.decode('utf-8', 'replace').strip() if data else ''
    return redact(text, sensitive) if text else (http.client.responses.get(status) or 'no message')


def _wait(sock, conn):
    """Set the socket's timeout for one read or write: the read timeout, cut short by the deadline.
    True when the deadline is what limits it."""
    remaining = conn.deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlinePassed()
    if remaining < conn.read_timeout:
        sock.settimeout(remaining)
        return True
    sock.settimeout(conn.read_timeout)
    return False


class _DeadlineReader(io.RawIOBase):
    """The socket as ``http.client`` reads it: each read waits at most the read timeout, and never
    past the request's deadline."""

    def __init__(self, owner):
        super(_DeadlineReader, self).__init__()
        self._owner = owner

    def readable(self):
        return True

    def readinto(self, buf):
        owner = self._owner
        by_deadline = _wait(owner.sock, owner.conn)
        try:
            return owner.sock.recv_into(buf)
        except socket.timeout:
            if by_deadline:
                raise _DeadlinePassed()
            raise

    def close(self):
        if not self.closed:
            super(_DeadlineReader, self).close()
            self._owner.reader_closed()


class _Socket(object):
    """Wraps a connected socket so that ``http.client`` reads it through ``_DeadlineReader``. Like a
    socket's own ``makefile``, the descriptor stays open until the readers handed out are closed
    (``http.client`` closes the connection before it reads an answer that ends with the connection)."""

    def __init__(self, sock, conn):
        self.sock = sock
        self.conn = conn
        self._readers = 0
        self._closed = False

    def makefile(self, mode='rb', *args, **kwargs):
        if mode != 'rb':  # pragma: no cover - http.client only reads responses this way
            return self.sock.makefile(mode, *args, **kwargs)
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self), _READ_CHUNK)

    def reader_closed(self):
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self.sock.close()

    def sendall(self, data):
        by_deadline = _wait(self.sock, self.conn)
        try:
            return self.sock.sendall(data)
        except socket.timeout:
            if by_deadline:
                raise _DeadlinePassed()
            raise

    def dropped(self):
        """True when the peer closed (or sent something unasked) while the connection was idle."""
        try:
            readable, dummy, dummy2 = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self):
        self._closed = True
        if self._readers <= 0:
            self.sock.close()

    def __getattr__(self, name):
        return getattr(self.sock, name)


def _connection_class(base):
    class Connection(base):
        """One keep-alive connection; ``deadline`` is set before each request."""
        deadline = 0.0
        read_timeout = 30.0

        def connect(self):
            self.timeout = max(0.001, min(self.read_timeout, self.deadline - time.monotonic()))
            base.connect(self)
            self.sock = _Socket(self.sock, self)

    return Connection


_HTTPConnection = _connection_class(http.client.HTTPConnection)
_HTTPSConnection = _connection_class(http.client.HTTPSConnection)


def _proxy_authorization(proxy):
    parts = urlsplit(proxy)
    if parts.username is None:
        return None
    pair = '%s:%s' % (unquote(parts.username), unquote(parts.password or ''))
    return 'Basic ' + base64.b64encode(pair.encode('latin-1', 'replace')).decode('ascii')


class NexusClient(object):
    """One client per module run. ``pool_size`` is how many connections are kept alive for reuse
    (at least the number of worker threads)."""

    def __init__(self, url, token=None, api_key=None, username=None, password=None, timeout=30,
                 validate_certs=True, ca_path=None, retries=3, pool_size=8, backoff_base=0.25,
                 sleep=time.sleep, max_response_bytes=MAX_RESPONSE_BYTES):
        if not HAS_REQUESTS:
            raise RuntimeError('the requests library is required')
        self.url = url.rstrip('/')
        self.timeout = timeout
        self.deadline = DEADLINE_FACTOR * timeout
        self.retries = max(0, int(retries))
        self.backoff_base = backoff_base
        self.max_response_bytes = int(max_response_bytes)
        self.pool_size = max(1, int(pool_size))
        self._sleep = sleep
        self._username = username
        self._password = password
        parts = urlsplit(self.url)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ValueError('url must be http:// or https:// with a host (got %r)' % url)
        self._https = parts.scheme == 'https'
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base_path = parts.path.rstrip('/')
        self._context = None
        if self._https:
            # As before with requests: its CA bundle unless ca_path is given; no check when told so.
            if validate_certs:
                self._context = ssl.create_default_context(cafile=ca_path or _default_ca_bundle())
            else:
                self._context = ssl.create_default_context()
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        # The proxy is chosen once, here, from the environment (NO_PROXY honoured), as requests does.
        self.proxy = select_proxy(self.url, get_environ_proxies(self.url)) or None
        self._proxy_headers = {}
        if self.proxy:
            proxy = self.proxy if '://' in self.proxy else 'http://' + self.proxy
            pparts = urlsplit(proxy)
            if pparts.scheme != 'http' or not pparts.hostname:
                raise ValueError('unsupported proxy %s for %s: only http:// proxies are supported'
                                 % (redact(pparts.scheme + '://' + (pparts.hostname or '?')), self.url))
            self._proxy_host, self._proxy_port = pparts.hostname, pparts.port or 80
            auth = _proxy_authorization(proxy)
            if auth:
                self._proxy_headers['Proxy-Authorization'] = auth
        self._idle = []  # connections ready for reuse
        self.headers = {'Accept': 'application/json', 'Accept-Encoding': 'identity', 'User-Agent': USER_AGENT}
        self._credentials = [c for c in (token, api_key, password) if c]
        if token:
            self.headers['Authorization'] = 'Bearer ' + token
        elif api_key:
            self.headers['X-API-Key'] = api_key

    # -- transport ---------------------------------------------------------------------------
    def _new_connection(self):
        if self.proxy and self._https:
            conn = _HTTPSConnection(self._proxy_host, self._proxy_port, context=self._context)
            conn.set_tunnel(self._host, self._port, headers=self._proxy_headers or None)
        elif self.proxy:
            conn = _HTTPConnection(self._proxy_host, self._proxy_port)
        elif self._https:
            conn = _HTTPSConnection(self._host, self._port, context=self._context)
        else:
            conn = _HTTPConnection(self._host, self._port)
        conn.read_timeout = self.timeout
        return conn

    def _target(self, endpoint):
        if self.proxy and not self._https:
            return self.url + endpoint  # absolute form through an HTTP proxy
        return self._base_path + endpoint

    def _exchange(self, method, endpoint, data):
        """``(status, headers, body bytes)`` of one request, or a transport exception."""
        try:
            conn = self._idle.pop()
            if conn.sock is not None and conn.sock.dropped():
                conn.close()
        except IndexError:
            conn = self._new_connection()
        conn.deadline = time.monotonic() + self.deadline
        headers = self.headers
        if data is not None:
            headers = dict(headers)
            headers['Content-Type'] = 'application/json'
        if self._proxy_headers and not self._https:
            headers = dict(headers, **self._proxy_headers)
        try:
            conn.request(method, self._target(endpoint), data, headers)
            response = conn.getresponse()
            status = response.status
            encoding = response.getheader('Content-Encoding')
            if encoding and encoding.strip().lower() != 'identity':
                raise _Refused('the answer is compressed (Content-Encoding: %s) although the client asked '
                               'for none; refused' % redact(encoding.strip()[:40]), status)
            length = response.length
            if length is not None and length > self.max_response_bytes:
                raise _Refused('the answer is %d bytes, more than the %d bytes the client reads; refused '
                               '(narrow a listing with a prefix)' % (length, self.max_response_bytes), status)
            if length is not None:
                body = response.read()
            else:
                body = self._read_bounded(response, status)
            wanted = {'location': response.getheader('Location')} if 300 <= status < 400 else {}
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        if len(self._idle) < self.pool_size:
            self._idle.append(conn)
        else:
            conn.close()
        return status, wanted, body

    def _read_bounded(self, response, status):
        chunks, size = [], 0
        while True:
            chunk = response.read(_READ_CHUNK)
            if not chunk:
                return b''.join(chunks)
            size += len(chunk)
            if size > self.max_response_bytes:
                raise _Refused('the answer is larger than the %d bytes the client reads; refused (narrow a '
                               'listing with a prefix)' % self.max_response_bytes, status)
            chunks.append(chunk)

    def _send(self, method, endpoint, data):
        try:
            return self._exchange(method, endpoint, data)
        except _Refused as exc:
            raise NexusApiError(exc.message, exc.status, method, endpoint)
        except _DeadlinePassed:
            raise NexusApiError('no complete answer from %s within %ss (at most %d times the timeout for one '
                                'request)' % (self.url, self.deadline, DEADLINE_FACTOR),
                                method=method, endpoint=endpoint)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise NexusApiError('TLS error talking to %s: %s' % (self.url, _reason('SSLError', exc)),
                                method=method, endpoint=endpoint)
        except socket.timeout:
            raise NexusApiError('no answer from %s within %ss' % (self.url, self.timeout),
                                method=method, endpoint=endpoint)
        except (OSError, http.client.HTTPException) as exc:
            raise NexusApiError('cannot reach %s: %s' % (self.url, _reason('ConnectionError', exc)),
                                method=method, endpoint=endpoint)

    def request(self, method, endpoint, body=None, params=None, expected=(200,), retry=None,
                retry_statuses=RETRY_STATUSES):
        """Send one request; return the decoded JSON body (None when empty).

        ``retry`` defaults to True for GET only: then connection errors and ``retry_statuses`` are
        repeated. Raises NexusApiError for unexpected statuses.
        """
        if retry is None:
            retry = method == 'GET'
        if params:
            endpoint = endpoint + '?' + urlencode(params)
        data = json.dumps(body).encode('utf-8') if body is not None else None
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                status, headers, content = self._send(method, endpoint, data)
                if status not in expected:
                    sensitive = _sensitive_in(body) + tuple(self._credentials)
                    raise NexusApiError(_server_message(status, headers, content, sensitive), status,
                                        method, endpoint)
            except NexusApiError as exc:
                if not (exc.status is None or exc.status in retry_statuses) or attempt + 1 >= attempts:
                    raise
                self._sleep(backoff_delay(attempt, self.backoff_base))
                continue
            if not content:
                return None
            try:
                return json.loads(content)
            except (ValueError, RecursionError):
                raise NexusApiError('answer is not JSON', status, method, endpoint)
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
        token = answer.get('token') if isinstance(answer, dict) else None
        if not token or not isinstance(token, str):
            raise NexusApiError('login answer holds no token', 200, 'POST', API + '/auth/login')
        self._credentials.append(token)
        self.headers['Authorization'] = 'Bearer ' + token

    # -- secrets -------------------------------------------------------------------------------
    def list_secrets(self, prefix=None):
        """Every live secret's listing entry (no values). ``prefix`` is passed to the server as is."""
        params = {'prefix': prefix} if prefix else None
        answer = self.request('GET', API + '/secrets', params=params, retry_statuses=RETRY_STATUSES_WITH_500)
        secrets = answer.get('secrets') if isinstance(answer, dict) else None
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

    # -- audit ---------------------------------------------------------------------------------
    def list_audit(self, action=None):
        """The audit log's entries (admin only). ``action`` narrows the listing where the server
        supports it; callers filter again themselves."""
        params = {'action': action} if action else None
        answer = self.request('GET', API + '/audit', params=params)
        logs = answer.get('logs') if isinstance(answer, dict) else None
        if not isinstance(logs, list):
            raise NexusApiError('audit answer holds no "logs" list', 200, 'GET', API + '/audit')
        return logs

    def close(self):
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _reason(kind, exc):
    """A short transport-error reason (no headers, so no credentials; api keys never go in URLs)."""
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, ConnectionRefusedError):
        text = 'Failed to establish a new connection: %s' % text
    elif exc.__class__.__name__ != kind and not isinstance(exc, ssl.SSLError):
        text = '%s: %s' % (exc.__class__.__name__, text) if str(exc) else exc.__class__.__name__
    return '%s (%s)' % (kind, redact(text)[:160])
