# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """The keep_* retention rules, the same wherever backups are pruned (a directory, a bucket)."""

    DOCUMENTATION = r'''
options:
  keep_last:
    description:
      - Keep the N newest backups (a backup made by this task counts).
    type: int
  keep_days:
    description:
      - Keep every backup taken less than N days ago.
    type: int
  keep_daily:
    description:
      - For the N newest days that have backups, keep the newest backup of each day.
    type: int
  keep_weekly:
    description:
      - For the N newest ISO weeks that have backups, keep the newest backup of each week.
    type: int
  keep_monthly:
    description:
      - For the N newest months that have backups, keep the newest backup of each month.
    type: int
notes:
  - Retention runs only when at least one C(keep_*) option is set to a positive number; a backup is
    kept when any rule keeps it (the union, as in restic). V(0) is the same as not setting a rule.
    Only backups named like nexusctl's (C(nexus-backup-YYYY-MM-DD-HHMMSS.tar.gz.enc)) are considered.
'''
