"""Retention rules with fixed dates (restic ``forget`` semantics)."""

import datetime

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._layout import (
    BACKUP_NAME_RE, backup_name, parse_backup_time)
from ansible_collections.nexus.secrets.plugins.module_utils._retention import dated_backups, plan_retention

NOW = datetime.datetime(2026, 3, 15, 12, 0, 0)


def name(when):
    return '/b/' + when.strftime('nexus-backup-%Y-%m-%d-%H%M%S.tar.gz.enc')


def series(start, step, count):
    return [(name(start - i * step), start - i * step) for i in range(count)]


def hourly_for_days(days):
    """Backups every 6 hours for ``days`` days up to NOW."""
    return series(NOW, datetime.timedelta(hours=6), days * 4)


def test_no_rule_keeps_everything():
    backups = hourly_for_days(3)
    keep, prune = plan_retention(backups)
    assert prune == [] and len(keep) == len(backups)
    assert plan_retention(backups, keep_last=0, keep_days=None) == (keep, [])


def test_keep_last():
    backups = hourly_for_days(2)
    keep, prune = plan_retention(backups, keep_last=3)
    assert keep == [name(NOW), name(NOW - datetime.timedelta(hours=6)), name(NOW - datetime.timedelta(hours=12))]
    assert len(prune) == len(backups) - 3
    assert set(keep).isdisjoint(prune)


def test_keep_last_more_than_exist():
    backups = hourly_for_days(1)
    assert plan_retention(backups, keep_last=100)[1] == []


def test_keep_days_is_relative_to_now():
    backups = series(NOW, datetime.timedelta(days=1), 10)
    keep, prune = plan_retention(backups, keep_days=3, now=NOW)
    # Strictly younger than 3 days: today, -1 d, -2 d; the one exactly 3 days old goes.
    assert keep == [name(NOW - datetime.timedelta(days=d)) for d in range(3)]
    assert len(prune) == 7


def test_keep_daily_takes_newest_of_each_day():
    backups = hourly_for_days(5)
    keep, _prune = plan_retention(backups, keep_daily=3)
    assert keep == [name(NOW), name(datetime.datetime(2026, 3, 14, 18)), name(datetime.datetime(2026, 3, 13, 18))]


def test_keep_daily_skips_days_without_backups():
    backups = [(name(d), d) for d in (NOW, NOW - datetime.timedelta(days=10), NOW - datetime.timedelta(days=20),
                                      NOW - datetime.timedelta(days=30))]
    keep, prune = plan_retention(backups, keep_daily=3)
    assert keep == [p for p, dummy in backups[:3]] and prune == [backups[3][0]]


def test_keep_weekly_uses_iso_weeks():
    # 2026-03-15 is a Sunday: Mon 09 .. Sun 15 is one ISO week.
    days = [datetime.datetime(2026, 3, d, 1) for d in (15, 12, 9, 8, 1, 2)]
    backups = [(name(d), d) for d in days]
    keep, prune = plan_retention(backups, keep_weekly=2)
    assert keep == [name(datetime.datetime(2026, 3, 15, 1)), name(datetime.datetime(2026, 3, 8, 1))]
    assert sorted(prune) == sorted(name(d) for d in days if d.day in (12, 9, 2, 1))


def test_keep_monthly():
    days = [datetime.datetime(2026, m, d) for m, d in ((3, 10), (3, 1), (2, 28), (2, 1), (1, 31))]
    days.append(datetime.datetime(2025, 12, 1))
    backups = [(name(d), d) for d in days]
    keep, _prune = plan_retention(backups, keep_monthly=3)
    assert keep == [name(datetime.datetime(2026, 3, 10)), name(datetime.datetime(2026, 2, 28)),
                    name(datetime.datetime(2026, 1, 31))]


def test_rules_are_a_union():
    backups = series(NOW, datetime.timedelta(days=1), 100)
    keep, prune = plan_retention(backups, keep_last=2, keep_daily=7, keep_monthly=3, now=NOW)
    expected = {name(NOW - datetime.timedelta(days=d)) for d in range(7)}
    # Newest of each month: Mar 15 (kept already), Feb 28, Jan 31.
    expected |= {name(datetime.datetime(2026, 2, 28, 12)), name(datetime.datetime(2026, 1, 31, 12))}
    assert set(keep) == expected
    assert len(prune) == 100 - len(expected)


def test_keep_and_prune_are_newest_first_and_partition():
    backups = hourly_for_days(4)[::-1]  # input order does not matter
    keep, prune = plan_retention(backups, keep_last=5, keep_days=2, now=NOW)
    times = dict(backups)
    assert keep == sorted(keep, key=times.get, reverse=True)
    assert sorted(keep + prune) == sorted(p for p, dummy in backups)


@pytest.mark.parametrize('text,expected', [
    ('nexus-backup-2025-12-04-001500.tar.gz.enc', datetime.datetime(2025, 12, 4, 0, 15, 0)),
    ('/some/dir/nexus-backup-2026-01-31-235959.tar.gz.enc', datetime.datetime(2026, 1, 31, 23, 59, 59)),
    ('nexus-backup-2026-13-01-000000.tar.gz.enc', None),
    ('nexus-backup-2026-01-01-000000.tar.gz.enc.sha256', None),
    ('nexus-backup-2026-01-01-000000.tar.gz', None),
    ('other-2026-01-01-000000.tar.gz.enc', None),
    ('xnexus-backup-2026-01-01-000000.tar.gz.enc', None),
])
def test_parse_backup_time(text, expected):
    assert parse_backup_time(text) == expected


def test_backup_name_round_trips():
    assert backup_name(NOW) == 'nexus-backup-2026-03-15-120000.tar.gz.enc'
    assert BACKUP_NAME_RE.match(backup_name()) and parse_backup_time(backup_name(NOW)) == NOW


def test_dated_backups_only_regular_pattern_files(tmp_path):
    good = tmp_path / 'nexus-backup-2026-01-01-000000.tar.gz.enc'
    good.write_bytes(b'x')
    (tmp_path / 'nexus-backup-2026-01-01-000000.tar.gz.enc.sha256').write_text('x')
    (tmp_path / 'notes.txt').write_text('x')
    (tmp_path / 'nexus-backup-2026-01-02-000000.tar.gz.enc').mkdir()
    (tmp_path / 'nexus-backup-2026-01-03-000000.tar.gz.enc').symlink_to(good)
    assert dated_backups(str(tmp_path)) == [(str(good), datetime.datetime(2026, 1, 1))]
