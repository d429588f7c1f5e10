# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The import engine: per-secret decisions (create, skip, compare, update) and the parallel passes
that repeat only what is safe to repeat.

Private to this collection; not a public API. Values pass through here; no message holds one.
"""

from __future__ import annotations

from ansible_collections.nexus.secrets.plugins.module_utils._api import AuthRejected, NexusApiError
from ansible_collections.nexus.secrets.plugins.module_utils._parallel import in_passes
from ansible_collections.nexus.secrets.plugins.module_utils._secrets_io import unreachable_reason

OUTCOMES = ('created', 'updated', 'unchanged', 'skipped', 'failed')
# What a create of an existing (or deleted) path answers: memory 409, sqlite 500
# (docs/nexus-behaviour.md §4).
REFUSED = (409, 500)


def same_secret(current, secret):
    return current.get('value') == secret['value'] and (current.get('metadata') or {}) == secret['metadata']


class Importer(object):
    """Decides and performs the import of one secret; returns ``(outcome, reason, repeat)``.

    It is called in passes: a secret whose failure is ``repeat``-able is handed to the next pass.
    Every write is sent once per pass; when its answer is lost, the next pass's GET shows whether it
    landed (``self.written`` remembers that it may have), so a write is never duplicated.
    """

    def __init__(self, client, present, overwrite, check_mode):
        self.client = client
        self.present = present
        self.overwrite = overwrite
        self.check_mode = check_mode
        self.written = {}  # path -> 'created'/'updated': a write whose answer was lost may have landed

    def __call__(self, secret):
        hint = unreachable_reason(secret['path'])
        if hint:
            return 'failed', 'not imported: NEXUS could store it but never return it (%s)' % hint, False
        try:
            if secret['path'] in self.present:
                return self.existing(secret, None)
            if self.check_mode:
                return 'created', None, False
            return self.create(secret)
        except NexusApiError as exc:
            if exc.auth_rejected:
                raise AuthRejected(exc)
            return 'failed', exc.describe(), exc.worth_another_pass

    def existing(self, secret, current):
        """A secret the server has: ``current`` is its GET answer when already read."""
        path = secret['path']
        if current is None and (self.overwrite or path in self.written):
            current = self.client.find_secret(path)
            if current is None:
                return 'failed', 'listed by the server, but GET answers 404 (deleted meanwhile?)', False
        if current is not None and path in self.written and same_secret(current, secret):
            return self.written[path], None, False  # our earlier write landed although its answer was lost
        if not self.overwrite:
            return 'skipped', None, False
        if same_secret(current, secret):
            return 'unchanged', None, False
        if self.check_mode:
            return 'updated', None, False
        return self.update(secret)

    def create(self, secret):
        path = secret['path']
        try:
            self.client.create_secret(path, secret['value'], secret['metadata'])
            return 'created', None, False
        except NexusApiError as exc:
            if not (exc.transient or exc.status in REFUSED):
                raise
            failure = exc
            if exc.transient:
                self.written[path] = 'created'
        # Did the path exist after all (sqlite's unmapped UNIQUE error), or did our write land?
        current = self.client.find_secret(path)
        if current is not None:
            return self.existing(secret, current)
        if failure.status in REFUSED:
            # "Exists" yet not readable: deleted (409 says so; a 500 is retried in case it was passing).
            return 'failed', ('the path was deleted on the server, and NEXUS never lets a deleted path be '
                              'created again (create answered HTTP %d: %s, GET answers 404)'
                              % (failure.status, failure.message)), failure.status == 500
        return 'failed', failure.describe(), True

    def update(self, secret):
        path = secret['path']
        try:
            self.client.update_secret(path, secret['value'], secret['metadata'])
            return 'updated', None, False
        except NexusApiError as exc:
            if exc.status == 404:
                return 'failed', 'the secret was deleted on the server during the import', False
            if not exc.worth_another_pass:
                raise
            self.written[path] = 'updated'
            failure = exc
        # Only a PUT that did not land may be repeated: every PUT adds a version.
        current = self.client.find_secret(path)
        if current is not None and same_secret(current, secret):
            return 'updated', None, False
        return 'failed', failure.describe(), True


def import_in_passes(importer, secrets, workers, passes, pause, results):
    """Fill ``results`` with ``{path: (outcome, reason)}`` as secrets finish (so an abort keeps what was
    done); repeatable failures get up to ``passes - 1`` more passes."""
    def attempt(secret):
        outcome, reason, repeat = importer(secret)
        results[secret['path']] = (outcome, reason)
        return repeat

    in_passes(attempt, secrets, workers, passes, pause)


def tally(results):
    """``(counts per outcome, failures list sorted by path)`` of ``import_in_passes`` results."""
    counts = dict((outcome, 0) for outcome in OUTCOMES)
    failed = []
    for path in sorted(results):
        outcome, reason = results[path]
        counts[outcome] += 1
        if outcome == 'failed':
            failed.append(dict(path=path, reason=reason))
    return counts, failed


def diff_of(results):
    """Diff-mode text: the secret paths per outcome; never values."""
    lines = []
    for outcome in OUTCOMES:
        paths = sorted(path for path, (got, dummy) in results.items() if got == outcome)
        if paths:
            lines.append('%s (%d):\n' % (outcome, len(paths)))
            lines.extend('  %s\n' % path for path in paths)
    return dict(prepared=''.join(lines))
