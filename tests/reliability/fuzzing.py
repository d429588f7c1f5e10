"""Shared pieces of the hypothesis fuzzers: bounded settings, a memoised KDF, tree snapshots.

The KDF (Argon2id, 64 MiB) costs about half a second per call on the test box and is not what the
fuzzers test; mutated inputs mostly keep their salt, so the real ``derive_key`` is memoised (same
function, same answers) to spend the time on the parsers instead.
"""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import HealthCheck, settings

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto

# Fixed seed (derandomize) so CI sees the same inputs every run; no deadline on a loaded box.
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def fuzz_settings(examples):
    return settings(FUZZ, max_examples=examples)


@pytest.fixture
def memoised_kdf(monkeypatch):
    real = _crypto.derive_key
    cached = functools.lru_cache(maxsize=256)(lambda password, salt: real(password, bytes(salt)))
    monkeypatch.setattr(_crypto, 'derive_key', lambda password, salt: cached(password, bytes(salt)))
    return cached


def tree(root):
    """``{relative path: (is_dir, size)}`` of everything under ``root`` (links not followed)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            found[os.path.relpath(path, str(root))] = (os.path.isdir(path), st.st_size)
    return found


def mutate(data, flips, cut, insert):
    """``data`` with byte flips (position, xor), then at offset ``cut`` (None: no cut) either
    ``insert`` spliced in or, when ``insert`` is empty, the rest cut off; positions wrap around."""
    buf = bytearray(data)
    for pos, xor in flips:
        if buf:
            buf[pos % len(buf)] ^= xor or 1
    if cut is not None and buf:
        cut %= len(buf) + 1
        buf = buf[:cut] + insert + buf[cut:] if insert else buf[:cut]
    return bytes(buf)
