# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``nexusctl export`` file format (docs/nexus-behaviour.md §5): build, serialise, read (plain or enveloped),
validate and compare.

Private to this collection; not a public API. Values pass through here; nothing in this file logs
or returns them in messages.
"""

from __future__ import annotations

import datetime
import json
import os
import stat

from ansible_collections.nexus.secrets.plugins.module_utils._envelope import (
    AUTH_FAILED_MSG,
    EnvelopeError,
    decrypt_bytes,
    encrypt_bytes,
)

# Go's encoding/json escapes these even inside MarshalIndent output; so does nexusctl.
_GO_ESCAPES = (('<', '\\u003c'), ('>', '\\u003e'), ('&', '\\u0026'),
               (u'\u2028', '\\u2028'), (u'\u2029', '\\u2029'))
MAX_PROBLEMS = 10
# The largest export file read (it is parsed in memory): 100,000 secrets of 1 KiB are about 110 MB.
MAX_EXPORT_BYTES = 256 * 1024 * 1024


class ExportFileError(Exception):
    """The export file cannot be used; the message says why (never with a secret value)."""


def read_export_file(path, limit=MAX_EXPORT_BYTES):
    """The bytes of the export file ``path``: a regular file of at most ``limit`` bytes, read once.

    Raises ExportFileError when it is larger (checked on the open file, and again while reading, so
    a file that grows meanwhile is still bounded) or not a regular file; OSError when unreadable.
    """
    with open(path, 'rb') as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ExportFileError('it is not a regular file')
        if info.st_size > limit:
            raise ExportFileError(_too_large(info.st_size, limit))
        blob = fh.read(limit + 1)
    if len(blob) > limit:
        raise ExportFileError(_too_large(len(blob), limit))
    return blob


def _too_large(size, limit):
    return ('it is %d bytes, more than the %d MiB an export may have (export fewer secrets per file '
            'with prefix)' % (size, limit // (1024 * 1024)))


def utc_now_rfc3339(now=None):
    """Like Go's ``time.Time`` JSON: RFC 3339, UTC ``Z``, fraction without trailing zeros."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    text = now.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f').rstrip('0').rstrip('.')
    return text + 'Z'


def unreachable_reason(path):
    """Why the REST API can never read ``path`` back (docs/nexus-behaviour.md §4), or None.

    The server's router cleans request paths and redirects, and ``.../versions`` is the versions
    endpoint; such secrets can be created but never read.
    """
    if path.endswith('/versions'):
        return 'the path ends in /versions, which the server routes to the versions endpoint'
    segments = path.split('/')
    if '' in segments:
        return 'the path has an empty segment (leading, trailing or double /), which the server redirects'
    if '.' in segments or '..' in segments:
        return 'the path has a . or .. segment, which the server redirects'
    return None


def export_entry(secret):
    """One ``secrets[]`` item in nexusctl's key order from a GET answer; metadata only when set."""
    entry = dict(path=secret['path'], value=secret['value'], version=secret.get('version'),
                 created_at=secret.get('created_at'), created_by=secret.get('created_by'))
    # Python dicts keep insertion order: path, value, version, created_at, created_by, metadata.
    ordered = dict((key, entry[key]) for key in ('path', 'value', 'version', 'created_at', 'created_by'))
    metadata = secret.get('metadata') or {}
    if metadata:
        ordered['metadata'] = dict((k, metadata[k]) for k in sorted(metadata))
    return ordered


def build_export(secrets, exported_at=None):
    """The export document for GET answers ``secrets`` (sorted by path, like sqlite's listing)."""
    entries = [export_entry(s) for s in sorted(secrets, key=lambda s: s['path'])]
    return dict(exported_at=exported_at or utc_now_rfc3339(), secrets=entries)


def dump_export(document):
    """Bytes exactly as nexusctl writes them (Go's MarshalIndent, two spaces, no final newline)."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text.encode('utf-8')


def looks_like_json(blob):
    """An export is JSON when its first non-blank byte is ``{``; anything else is an envelope."""
    return blob.lstrip(b' \t\r\n')[:1] == b'{'


def encode_export(document, password=None):
    """The file content: plain JSON, or the envelope of it when ``password`` is set."""
    data = dump_export(document)
    return encrypt_bytes(password, data) if password else data


def _decrypt(blob, password):
    try:
        return decrypt_bytes(password, blob)
    except EnvelopeError as exc:
        if str(exc) == AUTH_FAILED_MSG:
            raise ExportFileError('export_password does not decrypt it (wrong password, or the file '
                                  'is corrupt or not an export)')
        raise ExportFileError(str(exc))


def decode_export(blob, password=None):
    """The parsed JSON document of a plain or enveloped export file (not yet validated)."""
    if looks_like_json(blob):
        try:
            return json.loads(blob.decode('utf-8'))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting: RecursionError
            if not password:
                raise ExportFileError('it is not valid JSON: %s' % _json_error(exc))
            # A random envelope salt can start with "{": try the envelope before giving up.
            try:
                plain = _decrypt(blob, password)
            except ExportFileError:
                raise ExportFileError('it is not valid JSON: %s' % _json_error(exc))
    else:
        if not password:
            raise ExportFileError('it is not JSON, so it must be an encrypted export: set export_password')
        plain = _decrypt(blob, password)
    try:
        return json.loads(plain.decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ExportFileError('it decrypts, but the content is not valid JSON: %s' % _json_error(exc))


def _json_error(exc):
    if isinstance(exc, UnicodeDecodeError):
        return 'not UTF-8 text (byte %d)' % exc.start
    return str(exc)


def _describe(index, item):
    if isinstance(item, dict) and isinstance(item.get('path'), str) and item['path']:
        return 'secrets[%d] (%s)' % (index, item['path'])
    return 'secrets[%d]' % index


def validate_export(document):
    """``(secrets, problems)``: the normalised secrets (path, value, metadata dict) and a list of
    every problem found (empty when the file is usable). Problems never quote values."""
    problems = []
    if not isinstance(document, dict):
        return [], ['the top level is not a JSON object']
    items = document.get('secrets')
    if not isinstance(items, list):
        return [], ['there is no "secrets" list at the top level']
    secrets = []
    seen = {}
    for index, item in enumerate(items):
        where = _describe(index, item)
        if not isinstance(item, dict):
            problems.append('%s is not an object' % where)
            continue
        path, value, metadata = item.get('path'), item.get('value'), item.get('metadata')
        bad = False
        if not isinstance(path, str) or not path:
            problems.append('%s: "path" must be a non-empty string' % where)
            bad = True
        if not isinstance(value, str) or not value:
            problems.append('%s: "value" must be a non-empty string' % where)
            bad = True
        if metadata is not None and not (isinstance(metadata, dict)
                                         and all(isinstance(v, str) for v in metadata.values())):
            problems.append('%s: "metadata" must be a map of strings to strings' % where)
            bad = True
        if isinstance(path, str) and path:
            if path in seen:
                problems.append('%s: the path is listed twice (first at secrets[%d])' % (where, seen[path]))
                bad = True
            else:
                seen[path] = index
        if not bad:
            secrets.append(dict(path=path, value=value, metadata=dict(metadata or {})))
    return secrets, problems


def summarize_problems(problems, limit=MAX_PROBLEMS):
    shown = '; '.join(problems[:limit])
    if len(problems) > limit:
        shown += '; and %d more' % (len(problems) - limit)
    return shown


def same_content(document, other):
    """True when two export documents hold the same secrets (``exported_at`` ignored)."""
    return isinstance(other, dict) and other.get('secrets') == document.get('secrets')


def path_diff(before, after):
    """``(added, removed, changed)`` path lists between two export documents' secrets."""
    old = dict((s.get('path'), s) for s in (before or {}).get('secrets') or [] if isinstance(s, dict))
    new = dict((s['path'], s) for s in after['secrets'])
    added = sorted(p for p in new if p not in old)
    removed = sorted(p for p in old if p not in new and isinstance(p, str))
    changed = sorted(p for p in new if p in old and old[p] != new[p])
    return added, removed, changed


def overwrite_and_remove(path):
    """Overwrite the file at ``path`` with zeros, flush it to disk, then unlink it.

    The guide asks for export files to be deleted right after an import; overwriting first keeps the
    plaintext out of the freed blocks on filesystems that write in place (not on copy-on-write or
    log-structured ones, nor in their snapshots). The file is opened without following a link and
    unlinked only if the name still refers to the file that was overwritten.
    """
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(0, 'not a regular file', path)
            zeros = b'\0' * (1024 * 1024)
            left = st.st_size
            while left > 0:
                left -= os.write(fd, zeros[:min(left, len(zeros))])
            os.fsync(fd)
        finally:
            os.close(fd)
        now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(0, 'the file was replaced while it was overwritten; left in place', path)
        os.unlink(name, dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
