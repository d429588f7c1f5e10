"""NEXUS's secret operations over a storage, with audit entries (docs/nexus-behaviour.md §4 semantics and messages)."""

from __future__ import annotations

import json
from dataclasses import replace

from . import timefmt
from .audit import AuditSink
from .cipher import DecryptError, ValueCipher
from .model import AlreadyExists, AuditEntry, Secret, StorageError, new_id


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _string_map(value):
    """JSON ``metadata`` must decode as Go's ``map[string]string`` (null -> absent)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError(400, 'invalid request body')
    return value


def _optional_string(body, key):
    value = body.get(key)
    if value is None:
        return ''
    if not isinstance(value, str):
        raise ApiError(400, 'invalid request body')
    return value


def parse_body(raw):
    try:
        body = json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, 'invalid request body') from None
    if not isinstance(body, dict):
        raise ApiError(400, 'invalid request body')
    return body


class SecretService:
    def __init__(self, storage, keyring):
        self.storage = storage
        self.keyring = keyring
        self.cipher = ValueCipher(keyring.master)
        self.audit_sink = AuditSink(storage, keyring.signer())

    def close(self):
        self.audit_sink.close()

    # -- audit ----------------------------------------------------------------------------------
    def audit(self, action, user, ctx, secret=None, path=None, error=None):
        entry = AuditEntry(id=new_id(), timestamp=timefmt.now_ns(), action=action, user=user,
                           secret_id=secret.id if secret else None,
                           secret_path=secret.path if secret else path,
                           ip_address=ctx.get('ip', ''), user_agent=ctx.get('user_agent', ''),
                           success=error is None, error=error)
        self.audit_sink.put(entry)

    # -- operations -----------------------------------------------------------------------------
    def create(self, principal, raw, ctx):
        body = parse_body(raw)
        path = _optional_string(body, 'path')
        value = _optional_string(body, 'value')
        metadata = _string_map(body.get('metadata')) or {}
        if not path:
            raise ApiError(400, 'path is required')
        if not value:
            raise ApiError(400, 'value is required')
        now = timefmt.now_ns()
        secret = Secret(id=new_id(), path=path, value=self.cipher.encrypt(value.encode('utf-8')),
                        metadata=metadata, version=1, created_at=now, created_by=principal.user_id,
                        updated_at=now, updated_by=principal.user_id)
        try:
            self.storage.create(secret)
        except AlreadyExists:
            self.audit('secret.create', principal.user_id, ctx, path=path, error='secret already exists')
            raise ApiError(409, 'secret already exists') from None
        except StorageError as exc:
            self.audit('secret.create', principal.user_id, ctx, path=path, error=str(exc))
            raise ApiError(500, 'failed to create secret') from None
        self.audit('secret.create', principal.user_id, ctx, secret=secret)
        return 201, secret.to_json()

    def _load(self, path, principal, action, ctx):
        try:
            secret = self.storage.get(path)
        except StorageError as exc:
            self.audit(action, principal.user_id, ctx, path=path, error=str(exc))
            raise ApiError(500, 'failed to get secret') from None
        if secret is None:
            self.audit(action, principal.user_id, ctx, path=path, error='secret not found')
            raise ApiError(404, 'secret not found')
        return secret

    def read(self, principal, path, ctx):
        secret = self._load(path, principal, 'secret.read', ctx)
        try:
            value = self.cipher.decrypt(secret.value).decode('utf-8', 'replace')
        except DecryptError as exc:
            self.audit('secret.read', principal.user_id, ctx, secret=secret, error=str(exc))
            raise ApiError(500, 'failed to decrypt secret') from None
        self.audit('secret.read', principal.user_id, ctx, secret=secret)
        return 200, secret.to_json(value=value)

    def update(self, principal, path, raw, ctx):
        body = parse_body(raw)
        value = _optional_string(body, 'value')
        metadata = _string_map(body.get('metadata'))
        current = self._load(path, principal, 'secret.update', ctx)
        now = timefmt.now_ns()
        updated = replace(current, version=current.version + 1, updated_at=now, updated_by=principal.user_id,
                          value=self.cipher.encrypt(value.encode('utf-8')) if value else current.value,
                          metadata=dict(metadata) if metadata is not None else current.metadata)
        try:
            self.storage.save_version(updated, current.version)
        except StorageError as exc:
            self.audit('secret.update', principal.user_id, ctx, secret=current, error=str(exc))
            raise ApiError(500, 'failed to update secret') from None
        self.audit('secret.update', principal.user_id, ctx, secret=updated)
        return 200, updated.to_json()

    def delete(self, principal, path, ctx):
        try:
            found = self.storage.delete(path, timefmt.now_ns(), principal.user_id)
        except StorageError as exc:
            self.audit('secret.delete', principal.user_id, ctx, path=path, error=str(exc))
            raise ApiError(500, 'failed to delete secret') from None
        if not found:
            self.audit('secret.delete', principal.user_id, ctx, path=path, error='secret not found')
            raise ApiError(404, 'secret not found')
        self.audit('secret.delete', principal.user_id, ctx, path=path)
        return 204, None

    def list(self, principal, prefix, ctx):
        try:
            found = self.storage.list(prefix or None)
        except StorageError as exc:
            self.audit('secret.list', principal.user_id, ctx, error=str(exc))
            raise ApiError(500, 'failed to list secrets') from None
        self.audit('secret.list', principal.user_id, ctx)
        return 200, {'secrets': [s.to_json() for s in found], 'total': len(found)}

    def versions(self, principal, path, ctx):
        secret = self._load(path, principal, 'secret.versions', ctx)
        try:
            found = self.storage.versions(secret.id)
        except StorageError as exc:
            raise ApiError(500, 'failed to get versions') from exc
        self.audit('secret.versions', principal.user_id, ctx, secret=secret)
        return 200, {'versions': [v.to_json() for v in found], 'total': len(found)}

    def audit_log(self, principal, query):
        if principal.role != 'admin':
            raise ApiError(403, 'admin access required')
        self.audit_sink.flush()
        limit = (query.get('limit') or [''])[0]
        action = (query.get('action') or [''])[0]
        try:
            entries = self.storage.audit(limit=int(limit) if limit.isdigit() else None, action=action or None)
        except StorageError as exc:
            raise ApiError(500, 'failed to list audit logs') from exc
        return 200, {'logs': [e.to_json() for e in entries], 'total': len(entries)}
