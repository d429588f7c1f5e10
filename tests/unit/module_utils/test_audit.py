"""Audit summaries: time stamps as NEXUS and RFC 3339 write them, windows, filters, odd entries."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._audit import parse_time, resolve_since, summarize

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize('text, expected', [
    ('2026-12-02T10:00:00Z', datetime.datetime(2026, 12, 2, 10, tzinfo=UTC)),
    ('2026-12-02T10:00:00.123456789Z', datetime.datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)),
    ('2026-12-02T12:30:00+02:30', datetime.datetime(2026, 12, 2, 10, tzinfo=UTC)),
    ('2026-12-02t09:00:00-01:00', datetime.datetime(2026, 12, 2, 10, tzinfo=UTC)),
])
def test_rfc3339_forms(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize('text', ['2026-12-02', '2026-12-02T10:00:00', 'yesterday', '', None, 12])
def test_not_rfc3339(text):
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.parametrize('text, hours', [('24h', 24), ('90m', 1.5), ('7d', 168), ('1w', 168), ('30 s', 30 / 3600)])
def test_durations_count_back_from_now(text, hours):
    assert resolve_since(text, now=NOW) == NOW - datetime.timedelta(hours=hours)


def test_window_filters_and_odd_entries():
    entries = [
        {'timestamp': '2026-12-02T09:59:59Z', 'action': 'secret.read', 'user': 'u1', 'secret_path': 'a'},
        {'timestamp': '2026-12-02T10:00:00Z', 'action': 'secret.read', 'user': 'u1', 'secret_path': 'a'},
        {'timestamp': '2026-12-02T11:00:00Z', 'action': 'secret.read', 'user': 'u1', 'secret_path': 'b'},
        {'timestamp': '2026-12-02T11:30:00Z', 'action': 'secret.read', 'user': 'u2', 'secret_path': 'b',
         'success': False},
        {'timestamp': '2026-12-02T11:45:00Z', 'action': 'secret.list', 'user': 'u2'},
        {'timestamp': 'garbage', 'action': 'secret.read', 'user': 'u3'},
        'not an entry',
    ]
    since = datetime.datetime(2026, 12, 2, 10, tzinfo=UTC)
    out = summarize(entries, since, actions=['secret.read'])
    assert out['entries'] == 3 and out['undated'] == 2 and out['failed_requests'] == 1
    assert out['by_user'] == {'u1': {'total': 2, 'actions': {'secret.read': 2}, 'paths': 2, 'failed': 0},
                              'u2': {'total': 1, 'actions': {'secret.read': 1}, 'paths': 1, 'failed': 1}}
    assert out['top_users'] == [{'user': 'u1', 'total': 2}, {'user': 'u2', 'total': 1}]
    assert (out['first'], out['last']) == ('2026-12-02T10:00:00Z', '2026-12-02T11:30:00Z')
    assert summarize(entries, since, users=['u2'])['by_action'] == {'secret.read': 1, 'secret.list': 1}
