"""JWT HS256 tokens as NEXUS issues them: claims ``user_id``, ``role``, ``exp``/``iat`` as RFC 3339 strings.

The signing secret is fixed (compiled in), so a token stays valid across restarts and instances.
The value below is the reference server's own; the real server's secret is not known to us.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from . import timefmt

SIGNING_SECRET = b'nexus-reference-server-jwt-signing-secret'
LIFETIME_NS = 24 * 3600 * 10 ** 9


class TokenError(Exception):
    pass


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _unb64(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def issue(user_id, role, now_ns=None):
    """Return ``(token, expires_at_ns)``."""
    now_ns = now_ns if now_ns is not None else timefmt.now_ns()
    exp = now_ns + LIFETIME_NS
    header = _b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}, separators=(',', ':')).encode())
    claims = {'user_id': user_id, 'role': role, 'exp': timefmt.rfc3339(exp), 'iat': timefmt.rfc3339(now_ns)}
    payload = _b64(json.dumps(claims, separators=(',', ':')).encode())
    signing_input = (header + '.' + payload).encode('ascii')
    sig = _b64(hmac.new(SIGNING_SECRET, signing_input, hashlib.sha256).digest())
    return header + '.' + payload + '.' + sig, exp


def verify(token, now_ns=None):
    """The claims of a valid, unexpired token, else ``TokenError``."""
    try:
        header_b64, payload_b64, sig_b64 = token.split('.')
        header = json.loads(_unb64(header_b64))
        expected = hmac.new(SIGNING_SECRET, (header_b64 + '.' + payload_b64).encode('ascii'),
                            hashlib.sha256).digest()
        if header.get('alg') != 'HS256' or not hmac.compare_digest(expected, _unb64(sig_b64)):
            raise TokenError('bad signature')
        claims = json.loads(_unb64(payload_b64))
        exp = timefmt.parse(claims['exp'])
    except TokenError:
        raise
    except Exception as exc:  # malformed in any way
        raise TokenError('malformed token') from exc
    if exp <= (now_ns if now_ns is not None else timefmt.now_ns()):
        raise TokenError('token expired')
    if not claims.get('user_id'):
        raise TokenError('no user_id')
    return claims
