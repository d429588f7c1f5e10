# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which backups to keep: restic ``forget`` rules over nexusctl-named backup files.

Every rule names backups to keep; a backup is kept if any rule keeps it, and pruned otherwise.
No rule at all keeps everything. Private to this collection.
"""

from __future__ import annotations

import datetime
import os

from ansible_collections.nexus.secrets.plugins.module_utils._layout import parse_backup_time


def dated_backups(directory):
    """``[(path, datetime)]`` of the regular files in ``directory`` named like nexusctl backups, with the
    time their name carries (what retention decides on)."""
    found = []
    for entry in sorted(os.listdir(directory)):
        when = parse_backup_time(entry)
        path = os.path.join(directory, entry)
        if when is not None and os.path.isfile(path) and not os.path.islink(path):
            found.append((path, when))
    return found


def _bucket_keepers(ordered, count, bucket):
    """restic's bucket rule: the newest backup of each of the ``count`` newest buckets."""
    kept = set()
    last = None
    for path, when in ordered:
        if len(kept) >= count:
            break
        key = bucket(when)
        if key != last:
            kept.add(path)
            last = key
    return kept


def plan_retention(backups, keep_last=None, keep_days=None, keep_daily=None, keep_weekly=None,
                   keep_monthly=None, now=None):
    """Split ``backups`` (``[(path, datetime)]``) into ``(keep, prune)`` path lists, newest first.

    - ``keep_last``: the N newest backups.
    - ``keep_days``: every backup younger than N days before ``now`` (default: the current time).
    - ``keep_daily`` / ``keep_weekly`` / ``keep_monthly``: the newest backup of each of the N newest
      days / ISO weeks / months that have a backup.
    A rule that is None (or 0) keeps nothing by itself; with no rule set, everything is kept.
    """
    ordered = sorted(backups, key=lambda item: (item[1], item[0]), reverse=True)
    rules = [keep_last, keep_days, keep_daily, keep_weekly, keep_monthly]
    if not any(rules):
        return [path for path, _when in ordered], []
    keep = set()
    if keep_last:
        keep.update(path for path, _when in ordered[:keep_last])
    if keep_days:
        cutoff = (now or datetime.datetime.now()) - datetime.timedelta(days=keep_days)
        keep.update(path for path, when in ordered if when > cutoff)
    if keep_daily:
        keep |= _bucket_keepers(ordered, keep_daily, lambda when: when.date())
    if keep_weekly:
        keep |= _bucket_keepers(ordered, keep_weekly, lambda when: when.isocalendar()[:2])
    if keep_monthly:
        keep |= _bucket_keepers(ordered, keep_monthly, lambda when: (when.year, when.month))
    return ([path for path, _when in ordered if path in keep],
            [path for path, _when in ordered if path not in keep])


KEEP_RULES = ('keep_last', 'keep_days', 'keep_daily', 'keep_weekly', 'keep_monthly')


def keep_argument_spec():
    """The argument spec of the keep_* options (documented by the ``nexus.secrets.retention`` fragment)."""
    return dict((option, dict(type='int')) for option in KEEP_RULES)


def keep_rules(params):
    """The keep_* rules from a module's ``params``; ValueError naming a negative one."""
    for option in KEEP_RULES:
        if params.get(option) is not None and params[option] < 0:
            raise ValueError('%s must not be negative, got %d' % (option, params[option]))
    return dict((option, params.get(option)) for option in KEEP_RULES)


def plan_prune(directory, rules, new_path=None, now=None):
    """The backups in ``directory`` that ``rules`` (``{keep_*: N}``) would remove, newest first.

    ``new_path`` (a backup being written, or just written) counts as present and is never pruned.
    Only files named like nexusctl backups are considered; another host's sub-directory never is.
    """
    rules = dict((key, rules.get(key)) for key in KEEP_RULES)
    if not any(rules.values()) or not os.path.isdir(directory):
        return []
    backups = [item for item in dated_backups(directory) if item[0] != new_path]
    new_time = parse_backup_time(new_path) if new_path else None
    if new_time is not None:
        backups.append((new_path, new_time))
    dummy, prune = plan_retention(backups, now=now, **rules)
    return [path for path in prune if path != new_path]
