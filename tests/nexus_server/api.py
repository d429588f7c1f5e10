"""HTTP layer: routing like the real server's mux (path cleaning + 301), auth, JSON errors, faults.

Routes (docs/nexus-behaviour.md §4):
  GET  /health                         no auth
  POST /api/v1/auth/login              no auth
  GET  /api/v1/secrets[?prefix=P]      list
  POST /api/v1/secrets                 create
  GET  /api/v1/secrets/{path}/versions versions (so a secret whose path ends in /versions is unreadable)
  GET|PUT|DELETE /api/v1/secrets/{path}
                                       an empty {path} (also GET /api/v1/secrets//versions) -> 400
  GET  /api/v1/audit                   admin
  POST /api/v1/apikeys                 admin -- a reference-server addition (see README)
"""

from __future__ import annotations

import json
import posixpath
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from . import timefmt, tokens
from .faults import DROP
from .service import ApiError, parse_body

SECRETS = '/api/v1/secrets'
SECRET_PREFIX = SECRETS + '/'
# The versions route with an empty secret path: routed (400 "secret path is required"), not redirected.
EMPTY_PATH_VERSIONS = SECRET_PREFIX + '/versions'
MAX_BODY = 64 * 1024 * 1024


def clean_path(p):
    """Go's ``cleanPath`` (net/http ServeMux and gorilla/mux): what a request path is redirected to."""
    if p == '':
        return '/'
    if p[0] != '/':
        p = '/' + p
    np = posixpath.normpath(p)
    if np.startswith('//'):  # POSIX keeps a leading '//', Go's path.Clean does not
        np = '/' + np.lstrip('/')
    if p.endswith('/') and np != '/':
        np += '/'
    return np


def status_text(code):
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ''


class State:
    """Everything a request handler needs (one per server)."""

    def __init__(self, service, authenticator, storage, injector):
        self.service = service
        self.auth = authenticator
        self.storage = storage
        self.faults = injector
        self.shutting_down = threading.Event()
        self.active = 0
        self.active_lock = threading.Condition()

    def enter(self):
        with self.active_lock:
            self.active += 1

    def leave(self):
        with self.active_lock:
            self.active -= 1
            self.active_lock.notify_all()

    def wait_idle(self, timeout):
        with self.active_lock:
            return self.active_lock.wait_for(lambda: self.active == 0, timeout)


class Headers(dict):
    """Case-insensitive request headers (lower-cased keys); much cheaper than email.message."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'nexus-reference'
    sys_version = ''
    timeout = 300  # idle keep-alive connections are closed after this
    state: State = None  # set by the server factory

    # -- plumbing -------------------------------------------------------------------------------
    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def parse_request(self):
        """A lean HTTP/1.x request-line + header parser (the stdlib one dominates the profile)."""
        self.command = None
        self.request_version = version = 'HTTP/0.9'
        self.close_connection = True
        line = self.raw_requestline.decode('latin-1').rstrip('\r\n')
        self.requestline = line
        words = line.split()
        if len(words) != 3 or not words[2].startswith('HTTP/1.'):
            self.request_version = 'HTTP/1.1'
            self.send_error(HTTPStatus.BAD_REQUEST, 'Bad request syntax (%r)' % line)
            return False
        self.command, self.path, version = words
        self.request_version = version
        headers = Headers()
        count = 0
        while True:
            raw = self.rfile.readline(65537)
            if raw in (b'\r\n', b'\n', b''):
                break
            count += 1
            if len(raw) > 65536 or count > 100:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return False
            name, sep, value = raw.decode('latin-1').partition(':')
            if sep:
                headers[name.strip().lower()] = value.strip()
        self.headers = headers
        conn = headers.get('connection', '').lower()
        if version == 'HTTP/1.1':
            self.close_connection = conn == 'close'
        else:
            self.close_connection = conn != 'keep-alive'
        if headers.get('expect', '').lower() == '100-continue' and version == 'HTTP/1.1':
            self.wfile.write(b'HTTP/1.1 100 Continue\r\n\r\n')
        return True

    log_requests = False  # NEXUS_LOG_REQUESTS=1 (a reference-server addition for tests)

    def log_message(self, fmt, *args):  # the real server does not log requests
        return

    def _send(self, status, body=None, headers=None, content_type='application/json'):
        payload = b''
        if body is not None:
            payload = body if isinstance(body, bytes) else \
                (json.dumps(body, ensure_ascii=False, separators=(',', ':')) + '\n').encode()
        self.send_response_only(status)
        self.send_header('Date', self.date_time_string())
        if status != 204:
            if body is not None:
                self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header('Connection', 'close')
        self._headers_buffer.append(b'\r\n')
        data = b''.join(self._headers_buffer)
        self._headers_buffer = []
        if self.command != 'HEAD' and status != 204:
            data += payload
        self.wfile.write(data)

    def _error(self, status, message):
        self._send(status, {'error': status_text(status), 'message': message})

    def _read_body(self):
        length = self.headers.get('Content-Length')
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b''.join(chunks)
        if not length:
            return b''
        length = int(length)
        if length > MAX_BODY:
            raise ApiError(400, 'invalid request body')
        return self.rfile.read(length)

    def _ctx(self):
        return {'ip': self.client_address[0] if self.client_address else '',
                'user_agent': self.headers.get('User-Agent', '')}

    def _drop(self):
        """Close the connection without answering (fault injection)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- dispatch -------------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _dispatch(self):
        state = self.state
        if state.shutting_down.is_set():  # like Go's Shutdown closing idle connections
            self._drop()
            return
        state.enter()
        if self.log_requests:
            sys.stderr.write('request start: %s %s\n' % (self.command, self.path.split('?')[0]))
            sys.stderr.flush()
        try:
            self._route()
        except ApiError as exc:
            self._error(exc.status, exc.message)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # pragma: no cover - last resort, still JSON
            self.close_connection = True
            try:
                self._error(500, 'internal error: %s' % exc.__class__.__name__)
            except OSError:
                pass
        finally:
            state.leave()

    def _route(self):
        state = self.state
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body = self._read_body() if self.command in ('POST', 'PUT', 'PATCH', 'DELETE') else b''

        if path == '/health':
            return self._health()

        decision = state.faults.decide(self.command, path)
        if decision == DROP:
            return self._drop()
        if decision:
            raise ApiError(decision, 'injected fault')

        cleaned = clean_path(path)
        if cleaned != path and path != EMPTY_PATH_VERSIONS:
            location = cleaned + ('?' + split.query if split.query else '')
            html = b'<a href="' + location.encode() + b'">Moved Permanently</a>.\n\n' \
                if self.command in ('GET', 'HEAD') else None
            return self._send(301, html, {'Location': location}, 'text/html; charset=utf-8')

        method = self.command
        if path == '/api/v1/auth/login':
            if method != 'POST':
                raise ApiError(405, 'method not allowed')
            return self._login(body)
        if path == SECRETS or path.startswith(SECRET_PREFIX) or path in ('/api/v1/audit', '/api/v1/apikeys'):
            principal = state.auth.authenticate(self.headers, query)
            if principal is None:
                raise ApiError(401, 'authentication required')
            return self._authenticated(method, path, query, body, principal)
        raise ApiError(404, 'not found')

    def _authenticated(self, method, path, query, body, principal):
        svc = self.state.service
        ctx = self._ctx()
        if path == SECRETS:
            if method == 'GET':
                return self._send(*svc.list(principal, (query.get('prefix') or [''])[0], ctx))
            if method == 'POST':
                return self._send(*svc.create(principal, body, ctx))
            raise ApiError(405, 'method not allowed')
        if path == '/api/v1/audit':
            if method != 'GET':
                raise ApiError(405, 'method not allowed')
            return self._send(*svc.audit_log(principal, query))
        if path == '/api/v1/apikeys':
            if method != 'POST':
                raise ApiError(405, 'method not allowed')
            if principal.role != 'admin':
                raise ApiError(403, 'admin access required')
            name = ''
            if body.strip():
                name = str(parse_body(body).get('name') or '')
            return self._send(201, {'key': self.state.auth.create_api_key(principal, name), 'name': name})
        secret_path = path[len(SECRET_PREFIX):]
        versions = method == 'GET' and secret_path.endswith('/versions')
        if versions:
            secret_path = secret_path[:-len('/versions')]
        if not secret_path and method in ('GET', 'PUT', 'DELETE'):
            raise ApiError(400, 'secret path is required')
        if versions:
            return self._send(*svc.versions(principal, secret_path, ctx))
        if method == 'GET':
            return self._send(*svc.read(principal, secret_path, ctx))
        if method == 'PUT':
            return self._send(*svc.update(principal, secret_path, body, ctx))
        if method == 'DELETE':
            return self._send(*svc.delete(principal, secret_path, ctx))
        raise ApiError(405, 'method not allowed')

    def _login(self, raw):
        body = parse_body(raw)
        username, password = body.get('username'), body.get('password')
        if any(v is not None and not isinstance(v, str) for v in (username, password)):
            raise ApiError(400, 'invalid request body')  # Go: json cannot decode into the string field
        if not username or not password:
            raise ApiError(400, 'username and password are required')
        svc = self.state.service
        user = self.state.auth.check_password(username, password)
        if user is None:
            svc.audit('auth.login', username, self._ctx(), error='invalid credentials')
            raise ApiError(401, 'invalid credentials')
        token, exp = tokens.issue(user['id'], user['role'])
        svc.audit('auth.login', username, self._ctx())
        return self._send(200, {'token': token, 'expires_at': timefmt.rfc3339(exp),
                                'user': {'id': user['id'], 'name': user['name'], 'role': user['role']}})

    def _health(self):
        now = timefmt.rfc3339(timefmt.now_ns())
        error = None
        if self.state.faults.config.unhealthy:
            error = 'health check failed (injected)'
        else:
            try:
                self.state.storage.ping()
            except Exception as exc:
                error = 'database unavailable: %s' % exc
        if error:
            return self._send(503, {'status': 'unhealthy', 'error': error, 'timestamp': now})
        return self._send(200, {'status': 'healthy', 'timestamp': now})
