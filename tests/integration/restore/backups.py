"""Build NEXUS data dirs and backups (good and bad) for the restore tests.

Databases use the reference server's schema, keyrings its key format (docs/nexus-behaviour.md §2), backups the
collection's own archive writer in nexusctl's envelope; the hostile payloads are made here by hand.
"""

from __future__ import annotations

import gzip
import io
import os
import sqlite3
import stat
import tarfile
import uuid
from pathlib import Path

from ansible_collections.nexus.secrets.plugins.module_utils import _archive, _envelope
from tests.nexus_server import keyring as nexus_keyring
from tests.nexus_server.storage_sqlite import SCHEMA

KEY_FILES = ('age.key', 'master.key', 'signing.key', 'verify.key')
NOW = '2025-12-04T00:15:00Z'


def make_db(path, live=3, deleted=1, prefix='app'):
    """A NEXUS-schema database in WAL mode with ``live`` secrets and ``deleted`` soft-deleted ones."""
    conn = sqlite3.connect(str(path))
    conn.execute('PRAGMA journal_mode=WAL')
    for stmt in SCHEMA:
        conn.execute(stmt)
    rows = []
    for i in range(live + deleted):
        rows.append((str(uuid.uuid4()), '%s/secret-%03d' % (prefix, i), os.urandom(40), NOW, 'admin-001', NOW,
                     'admin-001', NOW if i >= live else None))
    conn.executemany('INSERT INTO secrets (id, path, value, created_at, created_by, updated_at, updated_by, '
                     'deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', rows)
    conn.commit()
    conn.close()  # the last connection checkpoints and removes -wal/-shm
    os.chmod(str(path), 0o644)
    return path


def make_keyring(keys_dir, password):
    nexus_keyring.save(keys_dir, nexus_keyring.generate_plaintexts(), password)
    return keys_dir


def make_data_dir(path, live=3, key_password='old-key-password', prefix='old'):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    make_db(path / 'nexus.db', live=live, prefix=prefix)
    make_keyring(path / 'data' / 'keys', key_password)
    return path


def make_backup(dest, password, source_dir, with_keys=True):
    """Encrypt ``source_dir``'s nexus.db (+ data/keys) into ``dest`` as nexusctl would."""
    keys_dir = os.path.join(str(source_dir), 'data', 'keys') if with_keys else None
    with open(str(dest), 'wb') as fh:
        with _envelope.EnvelopeWriter(fh, password) as writer:
            _archive.write_archive(writer, os.path.join(str(source_dir), 'nexus.db'), keys_dir)
    return dest


def seal(dest, password, payload):
    """An envelope around arbitrary ``payload`` bytes (valid tag, whatever is inside)."""
    with open(str(dest), 'wb') as fh:
        fh.write(_envelope.encrypt_bytes(password, payload))
    return dest


def _tar_bytes(add):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        add(tar)
    return gzip.compress(raw.getvalue())


def _file(tar, name, data=b'x', **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else None)


def _special(tar, name, kind, linkname=''):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


# name -> payload builder; every one must be refused with the data dir untouched.
HOSTILE_PAYLOADS = {
    'traversal': lambda: _tar_bytes(lambda t: _file(t, '../../evil.key')),
    'absolute': lambda: _tar_bytes(lambda t: _file(t, '/tmp/nexus-evil.db')),
    'symlink': lambda: _tar_bytes(lambda t: _special(t, 'nexus.db', tarfile.SYMTYPE, '/etc/passwd')),
    'hardlink': lambda: _tar_bytes(lambda t: _special(t, 'nexus.db', tarfile.LNKTYPE, '/etc/passwd')),
    'device': lambda: _tar_bytes(lambda t: _special(t, 'nexus.db', tarfile.CHRTYPE)),
    'fifo': lambda: _tar_bytes(lambda t: _special(t, 'nexus.db', tarfile.FIFOTYPE)),
    'duplicate': lambda: _tar_bytes(lambda t: (_file(t, 'nexus.db'), _file(t, 'nexus.db'))),
    'unknown-name': lambda: _tar_bytes(lambda t: _file(t, 'etc/cron.d/evil')),
    'key-outside-keys': lambda: _tar_bytes(lambda t: _file(t, 'data/evil.key')),
    'oversized-key': lambda: _tar_bytes(lambda t: _file(t, 'data/keys/master.key', b'0' * (2 * 1024 * 1024))),
    'not-gzip': lambda: b'this is not gzip at all, just some plaintext bytes' * 10,
    'gzip-not-tar': lambda: gzip.compress(b'plain text, not a tar archive\n' * 100),
    'empty-payload': lambda: b'',
}


def snapshot(root):
    """``{relative path: (kind, mode, uid, content)}`` of a tree, to prove it did not change."""
    root = str(root)
    if not os.path.lexists(root):
        return None
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as fh:
                    content = fh.read()
            found[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                                  st.st_ino, content)
    return found


RESTORE_STATE_DIR = '.nexus-secrets-restore'


def snapshot_beside_restore_state(root):
    """``snapshot(root)`` without nexus_restore's private state dir (journal and lock, beside every data
    dir it restores), which must be 0700, ours and hold no more than its lock file when idle."""
    found = snapshot(root)
    for path in [p for p in found if p.split(os.sep)[-1] == RESTORE_STATE_DIR]:
        kind, mode, uid = found[path][:3]
        assert stat.S_ISDIR(kind) and mode == 0o700 and uid == os.geteuid(), (path, found[path])
        inside = [p for p in found if p.startswith(path + os.sep)]
        assert [p.rsplit(os.sep, 1)[-1] for p in inside] in ([], ['lock']), inside
        for name in [path] + inside:
            del found[name]
    return found


def leftovers(*dirs):
    """Names in ``dirs`` that only a restore in progress should create."""
    found = []
    for directory in dirs:
        if os.path.isdir(str(directory)):
            found += [n for n in os.listdir(str(directory))
                      if n.startswith('.nexus-restore') or n.startswith('..nexus-restore') or n.startswith('.nexus-verify')]
    return found
