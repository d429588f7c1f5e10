# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only check of a running NEXUS server: health, credentials, live secret count, readable secrets.

One place for the check that disaster recovery, the restore drill and the migration run after they
changed a server. Only paths, counts and reasons leave this file, never a value.
Private to this collection; not a public API. No AnsibleModule logic here.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile

from urllib.parse import quote

from ansible_collections.nexus.secrets.plugins.module_utils import _verify
from ansible_collections.nexus.secrets.plugins.module_utils._api import AuthRejected, NexusApiError
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import remove_tree
from ansible_collections.nexus.secrets.plugins.module_utils._parallel import map_parallel
from ansible_collections.nexus.secrets.plugins.module_utils._secrets_io import unreachable_reason

READ_CHOICES = ('none', 'one', 'all')
# Paths named per kind of difference in ``backup_match`` (the counts are always complete).
MAX_PATHS = 10
# How many listed paths "one" tries before it gives up (a secret deleted between listing and GET).
ONE_CANDIDATES = 3

API_KEY_AFTER_RESTART = (
    'API keys live only in the server\'s memory and vanish when it restarts (docs/nexus-behaviour.md '
    '\u00a74), so after a restart (a recovery, a drill) only a token (JWT) or username/password work')


def auth_rejected_reason(method, error):
    """Why the credentials were refused, with the API-key explanation where it applies."""
    text = 'the %s was rejected: %s' % (method, error.describe())
    if method == 'api_key' and error.status == 401:
        text += '. ' + API_KEY_AFTER_RESTART
    elif method == 'token' and error.status == 401:
        text += ' (the token is expired, or was signed by another server)'
    return text


def check_health(client):
    """``dict(status, http_status, detail)``; status is ``healthy``, ``unhealthy`` or ``unreachable``."""
    try:
        client.request('GET', '/health')
    except NexusApiError as exc:
        if exc.status is None:
            return dict(status='unreachable', http_status=None, detail=exc.describe())
        return dict(status='unhealthy', http_status=exc.status, detail=exc.describe())
    return dict(status='healthy', http_status=200, detail='GET /health answered 200')


def _read(client, path):
    """None when ``path`` reads, else the last error. A 500 other than "failed to decrypt secret" (the
    keyring mismatch, which never passes) is asked again, as the client repeats 502-504 itself."""
    for attempt in range(client.retries + 1):
        try:
            client.get_secret(path)
            return None
        except NexusApiError as exc:
            if exc.auth_rejected:
                raise AuthRejected(exc)
            if exc.status == 500 and 'decrypt' not in (exc.message or '') and attempt < client.retries:
                client.pause(attempt)
                continue
            return exc
    raise AssertionError('unreachable')  # pragma: no cover


def _reason(error):
    reason = error.describe()
    if 'decrypt' in (error.message or ''):
        reason += ' (the keyring does not match the data)'
    return reason


def read_secrets(client, paths, read, workers=4):
    """``(checked, unreadable)`` for ``read`` in READ_CHOICES over the readable ``paths``.

    ``one`` reads the first path that answers (404, deleted since the listing, moves on to the next);
    ``all`` reads every path on ``workers`` threads. ``unreadable`` lists ``{path, reason}``.
    """
    if read == 'none' or not paths:
        return 0, []
    if read == 'one':
        checked = 0
        for path in paths[:ONE_CANDIDATES]:
            checked += 1
            error = _read(client, path)
            if error is None:
                return checked, []
            if error.status != 404:
                return checked, [dict(path=path, reason=_reason(error))]
        return checked, []
    errors = map_parallel(lambda p: _read(client, p), paths, workers)
    unreadable = [dict(path=p, reason=_reason(e)) for p, e in zip(paths, errors) if e is not None]
    return len(paths), unreadable


class BackupError(Exception):
    """The backup to compare with cannot be read; the message says why (never a password)."""


def backup_secrets(path, backup_password, tmp_dir=None):
    """``{path: (id, version)}`` of the live secrets in the backup ``path``.

    The backup is decrypted and validated into a private staging directory (removed afterwards),
    exactly as a restore would, and its database read there: nothing of a data directory is read.
    """
    try:
        staging = tempfile.mkdtemp(prefix='.nexus-info-', dir=tmp_dir)
    except OSError as exc:
        raise BackupError('cannot create a private staging directory: %s' % (exc.strerror or exc))
    try:
        staged = _verify.stage_backup(path, backup_password, staging)
        conn = sqlite3.connect('file:%s?mode=ro&immutable=1' % quote(os.path.abspath(staged.db_path)), uri=True)
        try:
            rows = conn.execute('SELECT path, id, version FROM secrets WHERE deleted_at IS NULL').fetchall()
        finally:
            conn.close()
        return dict((row[0], (row[1], row[2])) for row in rows)
    except _verify.BackupInvalid as exc:
        raise BackupError('the backup %s cannot be compared: %s' % (path, exc))
    except (sqlite3.DatabaseError, IOError, OSError) as exc:
        raise BackupError('the backup %s cannot be compared: %s' % (path, exc))
    finally:
        remove_tree(staging)


def compare_with_backup(listed, expected):
    """What restoring the backup (``expected``, from ``backup_secrets``) would change in what the
    server lists (``listed``: listing entries). A secret is the same when its id and version are: a
    NEXUS update always makes a new version, so the same version is the same value."""
    live = dict((s['path'], (s.get('id'), s.get('version'))) for s in listed
                if isinstance(s, dict) and isinstance(s.get('path'), str))
    missing = sorted(p for p in expected if p not in live)
    extra = sorted(p for p in live if p not in expected)
    changed = sorted(p for p in expected if p in live and tuple(live[p]) != tuple(expected[p]))
    return dict(matches=not (missing or extra or changed), backup_secrets=len(expected),
                missing=len(missing), extra=len(extra), changed=len(changed),
                paths=dict(missing=missing[:MAX_PATHS], extra=extra[:MAX_PATHS], changed=changed[:MAX_PATHS]))


def check_server(client, method, read='one', prefix='', expected_count=None, workers=4, backup=None):
    """Every check, in order; a failed step stops the ones that need it.

    Returns the module's result without ``changed``: ``health``, ``auth``, ``count``, ``checked``,
    ``unreadable``, ``unreachable_paths``, ``problems``, ``ok`` and ``backup_match`` (None unless
    ``backup``, the ``backup_secrets`` of a backup or a callable returning them, is given: then how the
    live secrets differ from it; a callable is called only once the server listed its secrets).
    """
    result = dict(health=check_health(client), auth=dict(method=method, ok=False, detail=None), count=None,
                  checked=0, unreadable=[], unreachable_paths=[], problems=[], backup_match=None)
    problems = result['problems']
    if result['health']['status'] != 'healthy':
        problems.append('the server is %s: %s' % (result['health']['status'], result['health']['detail']))
        return _finish(result)
    try:
        if method == 'username/password':
            client.login()
        listed = client.list_secrets(prefix or None)
    except NexusApiError as exc:
        if exc.auth_rejected:
            result['auth']['detail'] = auth_rejected_reason(method, exc)
            problems.append(result['auth']['detail'])
        else:
            problems.append('cannot list the secrets: %s' % exc.describe())
        return _finish(result)
    result['auth'].update(ok=True, detail='accepted')
    paths = sorted(set(s['path'] for s in listed if isinstance(s, dict) and isinstance(s.get('path'), str)
                       and s['path'].startswith(prefix or '')))
    result['count'] = len(paths)
    if backup is not None:
        if callable(backup):
            backup = backup()  # read only now that the server answered (BackupError passes through)
        result['backup_match'] = compare_with_backup(
            [s for s in listed if isinstance(s, dict) and str(s.get('path', '')).startswith(prefix or '')],
            dict((p, v) for p, v in backup.items() if p.startswith(prefix or '')))
    if expected_count is not None and len(paths) != expected_count:
        problems.append('the server lists %d live secrets%s, %d expected'
                        % (len(paths), (' under %r' % prefix) if prefix else '', expected_count))
    readable = []
    for path in paths:
        why = unreachable_reason(path)
        if why:
            result['unreachable_paths'].append(dict(path=path, reason=why))
        else:
            readable.append(path)
    try:
        result['checked'], result['unreadable'] = read_secrets(client, readable, read, workers)
    except AuthRejected as exc:
        result['auth'].update(ok=False, detail=auth_rejected_reason(method, exc.error))
        problems.append(result['auth']['detail'])
        return _finish(result)
    if result['unreadable']:
        first = result['unreadable'][0]
        problems.append('%d of %d secrets read could not be read, first %s: %s'
                        % (len(result['unreadable']), result['checked'], first['path'], first['reason']))
    return _finish(result)


def _finish(result):
    result['ok'] = not result['problems']
    return result
