"""Go's time formats as NEXUS writes them (nanosecond precision, UTC).

* JSON (``encoding/json`` of ``time.Time``): RFC 3339 with trailing zeros of the fraction trimmed,
  e.g. ``2026-11-30T01:04:44.406111Z``.
* SQLite columns (mattn/go-sqlite3): ``2026-11-30 01:04:44.406111+00:00``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from functools import lru_cache

_PARSE = re.compile(r'^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s*(Z|[+-]\d\d:?\d\d)?$')


def now_ns():
    return time.time_ns()


@lru_cache(maxsize=4096)
def _base(secs):
    return datetime.fromtimestamp(secs, tz=timezone.utc).strftime('%Y-%m-%d{}%H:%M:%S')


def _split(ns):
    secs, frac = divmod(ns, 10 ** 9)
    base = _base(secs)
    frac_s = ('.%09d' % frac).rstrip('0') if frac else ''
    return base, frac_s


def rfc3339(ns):
    base, frac = _split(ns)
    return base.format('T') + frac + 'Z'


def sqlite_text(ns):
    base, frac = _split(ns)
    return base.format(' ') + frac + '+00:00'


def parse(text):
    """Nanoseconds since the epoch from either format (or an RFC 3339 variant with an offset)."""
    if isinstance(text, (int, float)):
        return int(text * 10 ** 9) if isinstance(text, float) else int(text)
    m = _PARSE.match(text.strip())
    if not m:
        raise ValueError('unparseable time %r' % text)
    year, mon, day, hh, mm, ss, frac, off = m.groups()
    dt = datetime(int(year), int(mon), int(day), int(hh), int(mm), int(ss), tzinfo=timezone.utc)
    ns = int(dt.timestamp()) * 10 ** 9 + int((frac or '0').ljust(9, '0'))
    if off and off != 'Z':
        sign = 1 if off[0] == '+' else -1
        digits = off[1:].replace(':', '')
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 10 ** 9
    return ns
