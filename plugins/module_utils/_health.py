# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is a NEXUS server answering on its health URL? (A restore must never run under a live server.)

Only a refused connection proves the server is stopped: any HTTP answer, whatever its status
(503 "unhealthy" included), means a process is serving, and a timeout or other network error
proves nothing. Standard library only, and never through a proxy: the URL is the server itself.
Private to this collection.
"""

from __future__ import annotations

import errno
import socket

from urllib.error import HTTPError, URLError
from urllib.request import ProxyHandler, build_opener

STOPPED = 'stopped'
RUNNING = 'running'
UNKNOWN = 'unknown'

_REFUSED = (errno.ECONNREFUSED,)


def _is_refused(reason):
    if isinstance(reason, ConnectionRefusedError):
        return True
    return isinstance(reason, OSError) and reason.errno in _REFUSED


def probe(url, timeout=3.0):
    """Return ``(state, detail)`` with state ``stopped``, ``running`` or ``unknown``."""
    opener = build_opener(ProxyHandler({}))
    try:
        response = opener.open(url, timeout=timeout)
    except HTTPError as exc:
        exc.close()
        return RUNNING, 'the server answered %s with HTTP %d' % (url, exc.code)
    except URLError as exc:
        if _is_refused(exc.reason):
            return STOPPED, 'connection to %s refused' % url
        return UNKNOWN, 'could not reach %s: %s' % (url, exc.reason)
    except (socket.timeout, OSError) as exc:
        if _is_refused(exc):
            return STOPPED, 'connection to %s refused' % url
        return UNKNOWN, 'could not reach %s: %s' % (url, exc)
    except ValueError as exc:
        return UNKNOWN, 'invalid health URL %r: %s' % (url, exc)
    with response:
        return RUNNING, 'the server answered %s with HTTP %d' % (url, response.getcode())
