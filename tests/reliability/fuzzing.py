"""Shared pieces of the hypothesis fuzzers: bounded settings, a memoised KDF, tree snapshots.

The KDF (Argon2id, 64 MiB) costs about half a second per call on the test box and is not what the
fuzzers test; mutated inputs mostly keep their salt, so the real ``derive_key`` is memoised (same
function, same answers) to spend the time on the parsers instead.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto
from tests.nexus_server.harness import refused_port

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


def write_backups(directory, builders, source):
    """Write ``builders[name](source)`` as nexusctl-named backup files; return their paths, sorted."""
    directory.mkdir()
    files = []
    for name, build in sorted(builders.items()):
        path = directory / ('nexus-backup-%s.tar.gz.enc' % name)
        path.write_bytes(build(source))
        files.append(str(path))
    return files


def restore_each_then_list(ansible_playbook, data, backups, files, password):
    """One playbook: nexus_restore of every file into ``data`` (errors ignored), then
    nexus_backup_info verifying ``backups``. Returns the run; tasks are 'restore' and 'info'.
    The playbook lives outside the trees the callers compare before and after."""
    with tempfile.TemporaryDirectory(prefix='nexus-fuzz-play-') as tmp:
        playbook = os.path.join(tmp, 'restore-each.yml')
        with open(playbook, 'w') as fh:
            json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
                {'name': 'restore', 'nexus.secrets.nexus_restore': {
                    'src': '{{ item }}', 'backup_password': '{{ password }}', 'data_dir': str(data),
                    'health_url': 'http://127.0.0.1:%d/health' % refused_port()},
                 'loop': '{{ files }}', 'ignore_errors': True},
                {'name': 'info', 'nexus.secrets.nexus_backup_info': {
                    'path': str(backups), 'backup_password': '{{ password }}', 'verify': True,
                    'tmp_dir': str(data)}},
            ]}], fh)
        return ansible_playbook(playbook, extra_vars={'files': files, 'password': password})
