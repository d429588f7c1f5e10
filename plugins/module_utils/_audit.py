# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summaries of NEXUS's audit log: who did what, how often, since when (docs/nexus-behaviour.md §4).

The guide asks operators to review the audit log for unexpected exports. An export is a listing
followed by one read per secret, so it shows as a burst of ``read`` entries by one user: the counts
here are what a schedule compares with a threshold. Private to this collection.
"""

from __future__ import annotations

import datetime
import re

_RFC3339 = re.compile(r'^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$')
_DURATION = re.compile(r'^(\d+)\s*([smhdw])$')
_UNIT_SECONDS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
UTC = datetime.timezone.utc


def parse_time(text):
    """An RFC 3339 time stamp as an aware datetime; ValueError when it is not one."""
    match = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError('not an RFC 3339 time: %r' % (text,))
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or '.0')[1:7].ljust(6, '0'))
    zone = match.group(8)
    if zone in ('Z', 'z'):
        tz = UTC
    else:
        sign = -1 if zone[0] == '-' else 1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def resolve_since(text, now=None):
    """``since`` as an aware UTC datetime: an RFC 3339 time, or a duration back from now (``24h``, ``7d``)."""
    now = now or datetime.datetime.now(UTC)
    match = _DURATION.match(text.strip().lower())
    if match:
        return now - datetime.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return parse_time(text).astimezone(UTC)


def summarize(entries, since, actions=(), users=()):
    """Count the entries at or after ``since`` whose action is in ``actions`` and user in ``users``
    (empty means all). Entries without a readable time stamp are counted apart, never dropped."""
    actions, users = set(actions), set(users)
    by_action, by_user = {}, {}
    matched = failed = undated = 0
    first = last = None
    for entry in entries:
        if not isinstance(entry, dict):
            undated += 1
            continue
        action, user = str(entry.get('action') or ''), str(entry.get('user') or '')
        if (actions and action not in actions) or (users and user not in users):
            continue
        try:
            when = parse_time(entry.get('timestamp'))
        except ValueError:
            undated += 1
            continue
        if when < since:
            continue
        matched += 1
        first = when if first is None or when < first else first
        last = when if last is None or when > last else last
        by_action[action] = by_action.get(action, 0) + 1
        mine = by_user.setdefault(user, {'total': 0, 'actions': {}, 'paths': set(), 'failed': 0})
        mine['total'] += 1
        mine['actions'][action] = mine['actions'].get(action, 0) + 1
        if entry.get('secret_path'):
            mine['paths'].add(entry['secret_path'])
        if entry.get('success') is False:
            failed += 1
            mine['failed'] += 1
    for mine in by_user.values():
        mine['paths'] = len(mine['paths'])
    top = sorted(({'user': u, 'total': v['total']} for u, v in by_user.items()), key=lambda t: (-t['total'], t['user']))
    return {
        'entries': matched, 'failed_requests': failed, 'undated': undated, 'by_action': by_action, 'by_user': by_user,
        'top_users': top,
        'first': first.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ') if first else None,
        'last': last.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ') if last else None,
    }
