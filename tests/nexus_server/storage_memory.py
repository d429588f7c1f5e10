"""In-memory storage (``-storage memory``): literal prefix, random list order, 409 on existing paths."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

from .model import AlreadyExists, Version, new_id


class MemoryStorage:
    name = 'memory'

    def __init__(self):
        self._lock = threading.Lock()
        self._secrets = {}  # path -> Secret (soft-deleted ones stay)
        self._versions = {}  # secret id -> [Version]
        self._audit = []

    def create(self, secret):
        with self._lock:
            if secret.path in self._secrets:
                raise AlreadyExists('secret already exists')
            self._secrets[secret.path] = secret
            self._versions[secret.id] = [Version(new_id(), secret.id, secret.version, secret.value,
                                                 secret.created_at, secret.created_by)]
        return secret

    def get(self, path):
        with self._lock:
            secret = self._secrets.get(path)
            if secret is None or secret.deleted_at is not None:
                return None
            return _copy(secret)

    def save_version(self, secret, expected_version):
        with self._lock:
            current = self._secrets.get(secret.path)
            if current is None or current.deleted_at is not None:
                return secret
            self._secrets[secret.path] = _copy(secret)
            versions = [v for v in self._versions.setdefault(secret.id, []) if v.version != secret.version]
            versions.append(Version(new_id(), secret.id, secret.version, secret.value, secret.updated_at,
                                    secret.updated_by))
            self._versions[secret.id] = versions
        return secret

    def delete(self, path, when, user):
        with self._lock:
            secret = self._secrets.get(path)
            if secret is None or secret.deleted_at is not None:
                return False
            secret.deleted_at = when
            return True

    def list(self, prefix=None):
        with self._lock:
            found = [_copy(s) for s in self._secrets.values()
                     if s.deleted_at is None and (not prefix or s.path.startswith(prefix))]
        random.shuffle(found)  # Go map iteration order
        return found

    def versions(self, secret_id):
        with self._lock:
            return sorted(self._versions.get(secret_id, []), key=lambda v: -v.version)

    def add_audits(self, entries):
        with self._lock:
            self._audit.extend(entries)

    def audit(self, limit=None, action=None):
        with self._lock:
            entries = [e for e in reversed(self._audit) if not action or e.action == action]
        return entries[:int(limit)] if limit else entries

    def ping(self):
        return None

    def close(self):
        return None


def _copy(secret):
    return replace(secret, metadata=dict(secret.metadata))
