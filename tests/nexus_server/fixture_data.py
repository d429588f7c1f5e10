"""The nexusctl-made test vectors in ``tests/fixtures`` (see its README.md)."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures'
BACKUP_PASSWORD = 'fixture-backup-password'
KEYRING_PASSWORD = 'fixture-keyring-password'


def backup_path():
    return FIXTURES / 'nexusctl-backup.tar.gz.enc'


def export_path():
    return FIXTURES / 'nexusctl-export.json'


def expected_secrets():
    """The whole ``expected-secrets.json``: ``{"live_secrets": [...], "soft_deleted_paths": [...]}``."""
    return json.loads((FIXTURES / 'expected-secrets.json').read_text('utf-8'))


def live_secrets():
    """``{path: {"path", "value", "version", "metadata"}}`` of the 12 live secrets."""
    return {s['path']: s for s in expected_secrets()['live_secrets']}


def soft_deleted_paths():
    return list(expected_secrets()['soft_deleted_paths'])


def export_data():
    return json.loads(export_path().read_text('utf-8'))
