"""Look at a keyring directory: which passwords open it, its salts, its bytes."""

from __future__ import annotations

import os

from ansible_collections.nexus.secrets.plugins.module_utils import _keyring, _layout

KEY_FILES = _layout.KEY_FILES


def read_blobs(keys_dir):
    blobs = {}
    for name in KEY_FILES:
        with open(os.path.join(str(keys_dir), name), 'rb') as fh:
            blobs[name] = bytes.fromhex(fh.read().decode('ascii'))  # no trimming, like NEXUS
    return blobs


def opens_with(keys_dir, passwords):
    """The passwords among ``passwords`` that open every key file of ``keys_dir``."""
    blobs = read_blobs(keys_dir)
    return [p for p in passwords if _keyring.open_keyring(blobs, p) is not None]


def plaintexts(keys_dir, password):
    return _keyring.open_keyring(read_blobs(keys_dir), password)


def salts(keys_dir):
    return set(blob[:16] for blob in read_blobs(keys_dir).values())


def file_bytes(keys_dir):
    found = {}
    for name in sorted(os.listdir(str(keys_dir))):
        with open(os.path.join(str(keys_dir), name), 'rb') as fh:
            found[name] = fh.read()
    return found
