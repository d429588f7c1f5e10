# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Re-encrypt backup files under a new backup password, one file at a time, crash-safely.

Each file is decrypted and encrypted again into a private temp file beside it, that temp file is
read back with the new password and its plaintext compared with the original's (SHA-256), and only
then renamed over the original: at every moment a backup opens with the old password or the new
one, never neither. The ``sha256sum`` sidecar follows. A run killed between the rename and the
sidecar leaves a stale sidecar, which the next run finds (the file already opens with the new
password) and rewrites. Private to this collection.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import (
    CHUNK_SIZE,
    HEADER_LEN,
    SALT_LEN,
    EnvelopeError,
    EnvelopeReader,
    EnvelopeWriter,
)
from ansible_collections.nexus.secrets.plugins.module_utils._fsutil import UnsafePath, atomic_write, fsync_path, open_file_at
from ansible_collections.nexus.secrets.plugins.module_utils._layout import (
    SIDECAR_SUFFIX, SidecarError, parse_backup_time, parse_sidecar, read_sidecar, sidecar_line,
)

OLD, NEW, NEITHER = 'old', 'new', 'neither'
TEMP_MARK = '.rekey-'
GZIP_MAGIC = b'\x1f\x8b\x08'  # every backup's plaintext starts as a gzip stream


class RekeyError(Exception):
    """A user-facing reason why one file was not re-encrypted (it is left as it was)."""


def _open_regular(path):
    """Open ``path`` for reading without following a link; it must be a regular file."""
    try:
        fd, st = open_file_at(None, path, path)
    except UnsafePath as exc:
        raise RekeyError(str(exc))
    except OSError as exc:
        raise RekeyError('cannot open %s: %s' % (path, exc.strerror or exc))
    return os.fdopen(fd, 'rb'), st


HEAD_BYTES = HEADER_LEN + len(GZIP_MAGIC)  # what which_password needs of a file or an object


def password_of_head(head, old_password, new_password):
    """OLD, NEW or NEITHER for the first HEAD_BYTES bytes of a backup (see which_password)."""
    if len(head) < HEAD_BYTES:
        return NEITHER
    salt, nonce, first = head[:SALT_LEN], head[SALT_LEN:HEADER_LEN], head[HEADER_LEN:HEAD_BYTES]
    for label, password in ((OLD, old_password), (NEW, new_password)):
        key = _crypto.derive_key(password, salt)
        decryptor = _crypto.Cipher(_crypto.algorithms.AES(key), _crypto.modes.GCM(nonce)).decryptor()
        if decryptor.update(first) == GZIP_MAGIC:
            return label
    return NEITHER


def which_password(path, old_password, new_password):
    """OLD or NEW: which password the file opens with, judged from its first decrypted bytes (a
    wrong key yields the gzip magic with odds of 1 in 2**24; the full pass checks the GCM tag)."""
    fh, dummy = _open_regular(path)
    with fh:
        head = fh.read(HEAD_BYTES)
    return password_of_head(head, old_password, new_password)


class _Hashing(object):
    """A write-through file object that hashes what passes."""

    def __init__(self, out):
        self.out = out
        self.sha256 = hashlib.sha256()

    def write(self, data):
        self.sha256.update(data)
        return self.out.write(data)

    def flush(self):
        self.out.flush()


def _plaintext_sha256(fh, password):
    digest = hashlib.sha256()
    reader = EnvelopeReader(fh, password)
    while True:
        piece = reader.read(CHUNK_SIZE)
        if not piece:
            return digest.hexdigest()
        digest.update(piece)


def _write_sidecar(path, sha256):
    with atomic_write(path + SIDECAR_SUFFIX, mode=0o600) as fh:
        fh.write(sidecar_line(sha256, os.path.basename(path)).encode('utf-8'))


def sidecar_sha256(path):
    """The checksum the sidecar of ``path`` records, or None when there is no readable sidecar."""
    try:
        entry = parse_sidecar(read_sidecar(path + SIDECAR_SUFFIX) or b'')
    except SidecarError:
        return None
    return entry[0] if entry else None


def file_sha256(path):
    fh, dummy = _open_regular(path)
    digest = hashlib.sha256()
    with fh:
        for piece in iter(lambda: fh.read(CHUNK_SIZE), b''):
            digest.update(piece)
    return digest.hexdigest()


def fix_sidecar(path):
    """Rewrite a sidecar that exists but no longer matches its file; True when it was rewritten."""
    recorded = sidecar_sha256(path)
    if recorded is None and not os.path.lexists(path + SIDECAR_SUFFIX):
        return False
    actual = file_sha256(path)
    if recorded == actual:
        return False
    _write_sidecar(path, actual)
    return True


def _is_leftover(name):
    """A temp file of ours: a re-encrypted copy, or a sidecar being rewritten (``_fsutil.atomic_write``)."""
    if not (name.startswith('.') and name.endswith('.tmp')):
        return False
    if TEMP_MARK in name:
        return True
    marker = SIDECAR_SUFFIX + '.'
    return marker in name and parse_backup_time(name[1:name.index(marker)]) is not None


def remove_leftovers(directory):
    """Temp files of killed runs (ours only: by their names, regular files). Called with the
    directory's lock held, so no backup or rotation that could still own one is running."""
    removed = []
    for name in os.listdir(directory):
        if _is_leftover(name):
            path = os.path.join(directory, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                removed.append(path)
    if removed:
        fsync_path(directory)
    return removed


def reencrypt(src, raw, old_password, new_password):
    """Decrypt the envelope read from ``src`` with ``old_password`` and write it encrypted under
    ``new_password`` to the binary file ``raw``; the plaintext's SHA-256 and the new file's.

    EnvelopeError when ``src`` does not authenticate (what was written is then worthless)."""
    plain = hashlib.sha256()
    out = _Hashing(raw)
    reader = EnvelopeReader(src, old_password)
    with EnvelopeWriter(out, new_password) as writer:
        while True:
            piece = reader.read(CHUNK_SIZE)
            if not piece:
                break
            plain.update(piece)
            writer.write(piece)
    raw.flush()
    os.fsync(raw.fileno())
    return plain.hexdigest(), out.sha256.hexdigest()


def check_reencrypted(tmp, new_password, plain_sha256, shown):
    """RekeyError unless ``tmp`` opens with ``new_password`` to the plaintext of SHA-256 ``plain_sha256``."""
    with open(tmp, 'rb') as check:
        if _plaintext_sha256(check, new_password) != plain_sha256:
            raise RekeyError('%s: the re-encrypted copy does not read back the same; left as it was' % shown)


def temp_beside(directory, name):
    """A new private (0600) temp file in ``directory`` that remove_leftovers recognises: (fd, path)."""
    return tempfile.mkstemp(prefix='.' + name + TEMP_MARK, suffix='.tmp', dir=directory)


def rekey_file(path, old_password, new_password):
    """Re-encrypt ``path`` under ``new_password``; RekeyError (file untouched) when it cannot be."""
    directory, name = os.path.split(os.path.abspath(path))
    src, st = _open_regular(path)
    fd, tmp = temp_beside(directory, name)
    try:
        with src, os.fdopen(fd, 'wb') as raw:
            plain_sha256, sha256 = reencrypt(src, raw, old_password, new_password)
        check_reencrypted(tmp, new_password, plain_sha256, path)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except EnvelopeError as exc:
        raise RekeyError('%s: %s; left as it was' % (path, exc))
    except (IOError, OSError) as exc:
        raise RekeyError('%s: %s; left as it was' % (path, exc.strerror or exc))
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    fsync_path(directory)
    if os.path.lexists(path + SIDECAR_SUFFIX):
        _write_sidecar(path, sha256)
    return sha256
