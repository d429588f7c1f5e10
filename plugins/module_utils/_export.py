# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading every secret of a server for an export: the listing, then parallel GETs in passes.

Private to this collection; not a public API. Values pass through here; no message holds one.
"""

from __future__ import annotations

from ansible_collections.nexus.secrets.plugins.module_utils._api import AuthRejected, NexusApiError
from ansible_collections.nexus.secrets.plugins.module_utils._parallel import in_passes
from ansible_collections.nexus.secrets.plugins.module_utils._secrets_io import unreachable_reason


def listed_paths(client, prefix):
    """The sorted paths the server lists under ``prefix``, compared literally.

    The server's prefix filter (sqlite: case-insensitive LIKE with wildcards) can only return more
    than asked, so it narrows the listing and the literal match decides.
    """
    return sorted(set(s['path'] for s in client.list_secrets(prefix or None)
                      if isinstance(s, dict) and isinstance(s.get('path'), str) and s['path'].startswith(prefix)))


def read_secrets(client, paths, workers, passes):
    """``(secrets, unreadable)``: GET every path in parallel; failures that may pass are read again
    in up to ``passes - 1`` later passes (one pause per pass, not per secret, so a server that
    cannot decrypt anything is not waited on once per secret). Raises AuthRejected when the server
    stops accepting the credentials."""
    found, failures = {}, {}

    def read(path):
        try:
            found[path] = client.get_secret(path)
        except NexusApiError as exc:
            if exc.auth_rejected:
                raise AuthRejected(exc)
            failures[path] = exc
            return exc.worth_another_pass
        failures.pop(path, None)
        return False

    in_passes(read, paths, workers, passes, client.pause)
    unreadable = []
    for path in sorted(failures):
        reason = failures[path].describe()
        hint = unreachable_reason(path)
        if hint:
            reason += ' (%s)' % hint
        unreadable.append(dict(path=path, reason=reason))
    return [found[p] for p in sorted(found)], unreadable
