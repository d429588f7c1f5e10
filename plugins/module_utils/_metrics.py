# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus textfile-collector metrics of the last backup run, written atomically.

node_exporter's textfile collector reads ``*.prom`` files from one directory; the file is written
under a temporary name that does not end in ``.prom`` and renamed, so a scrape never sees half a
file. A failed run keeps the figures of the last successful backup (its time, size and secret
count) so an alert on ``time() - nexus_backup_last_success_timestamp_seconds`` keeps working.
Private to this collection.
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.nexus.secrets.plugins.module_utils import _fsutil

METRICS_FILE = 'nexus_backup.prom'
STATUSES = ('ok', 'failed', 'busy')
# Figures that describe the last successful backup: carried over from the previous file by a failed run.
CARRIED = ('nexus_backup_last_success_timestamp_seconds', 'nexus_backup_size_bytes', 'nexus_backup_secrets')
HELP = (
    ('nexus_backup_last_run_timestamp_seconds', 'Unix time the last backup run ended.'),
    ('nexus_backup_last_run_success', '1 when the last backup run made a backup, else 0.'),
    ('nexus_backup_last_run_busy', '1 when the last run found another backup running and skipped, else 0.'),
    ('nexus_backup_duration_seconds', 'Seconds the last backup run took to write the backup.'),
    ('nexus_backup_last_success_timestamp_seconds', 'Unix time of the last successful backup.'),
    ('nexus_backup_size_bytes', 'Size of the last successful backup in bytes.'),
    ('nexus_backup_secrets', 'Live secrets in the last successful backup.'),
    ('nexus_backup_verify_success', '1 when the last run verified its backup, 0 when verification failed.'),
    ('nexus_backup_upload_success', '1 when the last run uploaded its backup off the host, 0 when the upload failed.'),
)
_SAMPLE_RE = re.compile(r'^([a-z_]+) ([-+0-9.eE]+|NaN)$')


def read_metrics(path):
    """``{name: float}`` of the unlabelled samples in an existing metrics file; {} when absent or unreadable."""
    found = {}
    try:
        with open(path, 'r') as fh:
            for line in fh:
                match = _SAMPLE_RE.match(line.strip())
                if match:
                    try:
                        found[match.group(1)] = float(match.group(2))
                    except ValueError:
                        continue
    except (IOError, OSError, UnicodeDecodeError):
        return {}
    return found


def _number(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, float):
        return repr(round(value, 3))
    return str(value)


def render(status, previous=None, now=None, duration=None, size=None, secrets=None, verified=None, uploaded=None):
    """The text of the metrics file for one run.

    ``status`` is ``ok``, ``failed`` or ``busy``; ``verified`` / ``uploaded`` are True, False or
    None (the step did not run: no sample). ``previous`` is ``read_metrics`` of the old file.
    """
    if status not in STATUSES:
        raise ValueError('status must be one of %s, got %r' % (', '.join(STATUSES), status))
    now = time.time() if now is None else now
    values = {
        'nexus_backup_last_run_timestamp_seconds': round(now, 3),
        'nexus_backup_last_run_success': status == 'ok',
        'nexus_backup_last_run_busy': status == 'busy',
    }
    if duration is not None:
        values['nexus_backup_duration_seconds'] = float(duration)
    if status == 'ok':
        values['nexus_backup_last_success_timestamp_seconds'] = round(now, 3)
        if size is not None:
            values['nexus_backup_size_bytes'] = int(size)
        if secrets is not None:
            values['nexus_backup_secrets'] = int(secrets)
    else:
        for name in CARRIED:
            if previous and name in previous:
                values[name] = previous[name]
    if verified is not None:
        values['nexus_backup_verify_success'] = bool(verified)
    if uploaded is not None:
        values['nexus_backup_upload_success'] = bool(uploaded)
    lines = []
    for name, text in HELP:
        if name in values:
            value = values[name]
            if isinstance(value, float) and value.is_integer() and name in CARRIED[1:]:
                value = int(value)
            lines.append('# HELP %s %s' % (name, text))
            lines.append('# TYPE %s gauge' % name)
            lines.append('%s %s' % (name, _number(value)))
    return '\n'.join(lines) + '\n'


def write_metrics(directory, status, name=METRICS_FILE, mode=0o644, now=None, **figures):
    """Write ``<directory>/<name>`` atomically (temp file + rename in ``directory``); return ``(path, text)``."""
    path = os.path.join(directory, name)
    text = render(status, previous=read_metrics(path), now=now, **figures)
    with _fsutil.atomic_write(path, mode=mode) as fh:
        fh.write(text.encode('utf-8'))
    return path, text
