"""Records shared by both storages and their JSON shapes (docs/nexus-behaviour.md §4)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Optional

from . import timefmt


class StorageError(Exception):
    """An operation failed inside the storage (mapped to 500 with the handler's message)."""


class AlreadyExists(StorageError):
    """memory storage: the path exists (live or soft-deleted) -> 409."""


def new_id():
    return str(uuid.uuid4())


@dataclass
class Secret:
    id: str
    path: str
    value: bytes  # nonce || AES-GCM(plaintext) with the master key
    metadata: dict = field(default_factory=dict)
    version: int = 1
    created_at: int = 0  # ns since epoch
    created_by: str = ''
    updated_at: int = 0
    updated_by: str = ''
    deleted_at: Optional[int] = None

    def to_json(self, value=None):
        """Go's struct order; ``value`` only when given, ``metadata`` omitted when empty."""
        out = {'id': self.id, 'path': self.path}
        if value is not None:
            out['value'] = value
        if self.metadata:
            out['metadata'] = self.metadata
        out.update({
            'version': self.version,
            'created_at': timefmt.rfc3339(self.created_at),
            'created_by': self.created_by,
            'updated_at': timefmt.rfc3339(self.updated_at),
            'updated_by': self.updated_by,
        })
        return out


@dataclass
class Version:
    id: str
    secret_id: str
    version: int
    value: bytes
    created_at: int
    created_by: str

    def to_json(self):
        return {'id': self.id, 'secret_id': self.secret_id, 'version': self.version,
                'created_at': timefmt.rfc3339(self.created_at), 'created_by': self.created_by}


@dataclass
class AuditEntry:
    id: str
    timestamp: int
    action: str
    user: str
    secret_id: Optional[str] = None
    secret_path: Optional[str] = None
    ip_address: str = ''
    user_agent: str = ''
    success: bool = True
    error: Optional[str] = None
    metadata: dict = field(default_factory=dict)
    signature: str = ''

    def signed_payload(self):
        return json.dumps([self.id, timefmt.rfc3339(self.timestamp), self.action, self.user,
                           self.secret_id or '', self.secret_path or '', self.ip_address,
                           self.user_agent, self.success, self.error or ''],
                          separators=(',', ':')).encode('utf-8')

    def to_json(self):
        out = {'id': self.id, 'timestamp': timefmt.rfc3339(self.timestamp), 'action': self.action,
               'user': self.user}
        if self.secret_id:
            out['secret_id'] = self.secret_id
        if self.secret_path:
            out['secret_path'] = self.secret_path
        out.update({'ip_address': self.ip_address, 'user_agent': self.user_agent,
                    'success': self.success})
        if self.error:
            out['error'] = self.error
        if self.metadata:
            out['metadata'] = self.metadata
        out['signature'] = self.signature
        return out


def metadata_from_db(text):
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def metadata_to_db(metadata):
    return json.dumps(metadata or {}, separators=(',', ':'), ensure_ascii=False, sort_keys=True)
