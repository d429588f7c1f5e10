"""Users, login and request authentication (Bearer JWT, ``X-API-Key`` header, ``api_key`` query)."""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass

from . import timefmt, tokens

# The one built-in user of the real server.
USERS = {'admin': {'id': 'admin-001', 'name': 'Admin User', 'role': 'admin', 'password': 'admin'}}


@dataclass
class Principal:
    user_id: str
    role: str
    via: str  # 'jwt' or 'api_key'


class Authenticator:
    def __init__(self):
        self._api_keys = {}  # key -> Principal; in memory only, gone on restart
        self._lock = threading.Lock()
        self._verified = {}  # token -> (claims, exp_ns): HMAC + JSON once per token, not per request

    def _verify_token(self, token):
        hit = self._verified.get(token)
        if hit is not None and hit[1] > timefmt.now_ns():
            return hit[0]
        claims = tokens.verify(token)
        if len(self._verified) > 10000:
            self._verified.clear()
        self._verified[token] = (claims, timefmt.parse(claims['exp']))
        return claims

    @staticmethod
    def check_password(username, password):
        user = USERS.get(username)
        if user and hmac.compare_digest(user['password'].encode(), password.encode()):
            return user
        return None

    def create_api_key(self, principal, name=''):
        key = 'nxk_' + secrets.token_hex(24)
        with self._lock:
            self._api_keys[key] = Principal(principal.user_id, principal.role, 'api_key')
        return key

    def authenticate(self, headers, query):
        """The request's Principal, or None (-> 401 "authentication required")."""
        auth = headers.get('Authorization', '')
        if auth:
            scheme, dummy, token = auth.partition(' ')
            if scheme.lower() == 'bearer' and token.strip():
                try:
                    claims = self._verify_token(token.strip())
                except tokens.TokenError:
                    return None
                return Principal(claims['user_id'], claims.get('role', ''), 'jwt')
        key = headers.get('X-API-Key') or (query.get('api_key') or [''])[0]
        if key:
            with self._lock:
                return self._api_keys.get(key)
        return None
