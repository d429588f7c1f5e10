"""Hostile backup payloads for the reliability suite, sealed with the real backup password.

Every payload is a gzip'd tar written by hand (tarfile can be told to write anything), then put in
nexusctl's envelope with ``_envelope.EnvelopeWriter`` so the GCM tag verifies and the archive
reader itself has to refuse it. The bombs are streamed: one deflate chunk of zeros is compressed
once and repeated, so tens of GiB are declared for a few MiB of work.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib

from ansible_collections.nexus.secrets.plugins.module_utils import _envelope

BLOCK = 512
SQLITE_MAGIC = b'SQLite format 3\x00'
GIB = 1024 ** 3


def header(name, size=0, kind=tarfile.REGTYPE, linkname='', mode=0o600, pax=None):
    """The raw header block(s) of one member (GNU base-256 sizes when they do not fit in octal)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    if pax:
        info.pax_headers = dict(pax)
        return info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')
    fmt = tarfile.GNU_FORMAT if size >= 8 ** 11 else tarfile.USTAR_FORMAT
    return info.tobuf(fmt, 'utf-8', 'surrogateescape')


def member(name, data=b'x', kind=tarfile.REGTYPE, linkname='', mode=0o600, pax=None):
    """Header plus padded content of one member."""
    size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) else 0
    body = data if size else b''
    pad = (-len(body)) % BLOCK
    return header(name, size, kind, linkname, mode, pax) + body + b'\0' * pad


def end():
    return b'\0' * (2 * BLOCK)


def valid_members(db_bytes, keys):
    """A well-formed member list (database, keyring dir, key files) to hide a bad member among."""
    out = member('nexus.db', db_bytes) + member('data/keys', kind=tarfile.DIRTYPE, mode=0o700)
    for name in sorted(keys):
        out += member('data/keys/' + name, keys[name])
    return out


class GzipStream(object):
    """A gzip member written straight into ``out`` (the envelope writer); ``zeros()`` repeats a
    pre-compressed block so a bomb costs almost nothing to make."""

    def __init__(self, out):
        self._out = out
        self._comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        self._out.write(b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff')

    def write(self, data):
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._out.write(self._comp.compress(data) + self._comp.flush(zlib.Z_FULL_FLUSH))

    def zeros(self, total, chunk=1024 * 1024):
        """``total`` zero bytes; the stream stays valid deflate, the trailer CRC is only right when
        the reader gets that far (a reader that does is already wrong)."""
        one = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = one.compress(b'\0' * chunk) + one.flush(zlib.Z_FULL_FLUSH)
        full, rest = divmod(total, chunk)
        for dummy in range(full):
            self._out.write(block)
        self._size += full * chunk
        if rest:
            self.write(b'\0' * rest)

    def close(self):
        self._out.write(self._comp.flush(zlib.Z_FINISH))
        self._out.write(struct.pack('<II', self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))


def seal_payload(path, password, payload):
    """``path`` := envelope(payload bytes)."""
    with open(str(path), 'wb') as fh:
        with _envelope.EnvelopeWriter(fh, password) as writer:
            writer.write(payload)
    return path


def seal_tar(path, password, tar_bytes):
    """``path`` := envelope(gzip(tar_bytes))."""
    with open(str(path), 'wb') as fh:
        with _envelope.EnvelopeWriter(fh, password) as writer:
            gz = GzipStream(writer)
            gz.write(tar_bytes)
            gz.close()
    return path


def sqlite_header(page_size, pages):
    """The first 100 bytes of an SQLite file claiming ``pages`` pages of ``page_size`` (header
    size valid: version-valid-for equals the change counter)."""
    head = bytearray(100)
    head[0:16] = SQLITE_MAGIC
    head[16:18] = struct.pack('>H', page_size if page_size < 65536 else 1)
    head[18], head[19], head[21], head[22], head[23] = 1, 1, 64, 32, 32
    head[24:28] = struct.pack('>I', 1)
    head[28:32] = struct.pack('>I', pages)
    head[44:48] = struct.pack('>I', 4)
    head[92:96] = struct.pack('>I', 1)
    head[96:100] = struct.pack('>I', 3045000)
    return bytes(head)


def seal_bomb(path, password, declared, actual, prefix=b''):
    """A ``nexus.db`` declared ``declared`` bytes: ``prefix`` then zeros, ``actual`` bytes in all,
    then the stream just stops (a sound reader refuses it long before)."""
    with open(str(path), 'wb') as fh:
        with _envelope.EnvelopeWriter(fh, password) as writer:
            gz = GzipStream(writer)
            gz.write(header('nexus.db', declared))
            gz.write(prefix)
            gz.zeros(actual - len(prefix))
            gz.close()
    return path


def tar_bomb(count):
    """``count`` tiny key members: a tar bomb by member count."""
    out = io.BytesIO()
    out.write(member('data/keys', kind=tarfile.DIRTYPE, mode=0o700))
    for i in range(count):
        out.write(member('data/keys/k%06d.key' % i, b'k'))
    out.write(end())
    return out.getvalue()


def corpus(db_bytes, keys, outside):
    """``{case: tar bytes}``: every kind of member a backup must never contain.

    ``outside`` is an absolute path a successful attack would create or overwrite; after the runs
    the caller checks it is still absent.
    """
    good = valid_members(db_bytes, keys)
    rel_up = '../' * 12 + outside.lstrip('/')
    cases = {
        'traversal-dotdot': member('../x') + end(),
        'traversal-deep': member(rel_up, b'pwned') + end(),
        'traversal-inside-keys': good + member('data/keys/../../x.key') + end(),
        'traversal-after-valid': good + member('data/keys/../../../' + outside.lstrip('/')) + end(),
        'absolute-path': member(outside, b'pwned') + end(),
        'absolute-db-name': member('/nexus.db', db_bytes) + end(),
        'windows-drive': member('C:/nexus.db', db_bytes) + end(),
        'symlink-db': member('nexus.db', kind=tarfile.SYMTYPE, linkname=outside) + end(),
        'symlink-keys-then-file': (member('data/keys', kind=tarfile.SYMTYPE, linkname=outside.rsplit('/', 1)[0])
                                   + member('data/keys/master.key', b'through the link') + end()),
        'hardlink-db': member('nexus.db', kind=tarfile.LNKTYPE, linkname=outside) + end(),
        'hardlink-then-file': (member('data/keys/master.key', keys['master.key'])
                               + member('nexus.db', kind=tarfile.LNKTYPE, linkname='data/keys/master.key')
                               + member('nexus.db', b'written through the link') + end()),
        'char-device': member('nexus.db', kind=tarfile.CHRTYPE) + end(),
        'block-device': member('data/keys/master.key', kind=tarfile.BLKTYPE) + end(),
        'fifo': member('nexus.db', kind=tarfile.FIFOTYPE) + end(),
        'contiguous-file-type': member('nexus.db', db_bytes, kind=tarfile.CONTTYPE) + end(),
        'gnu-sparse': member('nexus.db', kind=tarfile.GNUTYPE_SPARSE) + end(),
        'duplicate-db': good + member('nexus.db', db_bytes) + end(),
        'duplicate-key': good + member('data/keys/master.key', keys['master.key']) + end(),
        'dir-named-db': member('nexus.db', kind=tarfile.DIRTYPE) + end(),
        'file-named-keys-dir': member('data/keys', b'not a dir') + end(),
        'unknown-name': good + member('etc/cron.d/evil', b'* * * * * root sh') + end(),
        'unknown-top-level': member('data', kind=tarfile.DIRTYPE) + good + end(),
        'dot-slash-prefix': member('./nexus.db', db_bytes) + end(),
        'key-outside-keys-dir': good + member('data/evil.key') + end(),
        'hidden-key-name': good + member('data/keys/.hidden.key') + end(),
        'nested-key-dir': good + member('data/keys/sub/x.key') + end(),
        'pax-path-traversal': member('nexus.db', db_bytes, pax={'path': '../../pax-escape'}) + end(),
        'pax-huge-size': member('data/keys/master.key', b'k', pax={'size': str(64 * GIB)}) + end(),
        'huge-declared-db': header('nexus.db', 100 * GIB) + end(),
        'huge-declared-key': header('data/keys/master.key', 5 * 1024 ** 2) + b'\0' * BLOCK + end(),
        'tar-bomb-members': tar_bomb(5000),
    }
    return cases


def bombs(tmp, password):
    """``{case: sealed path}`` of gzip bombs (streamed; see ``seal_bomb``)."""
    return {
        'gzip-bomb-zeros-40GiB': seal_bomb(tmp / 'bomb-zeros', password, 40 * GIB, 512 * 1024 ** 2),
        'gzip-bomb-sqlite-header-40GiB': seal_bomb(tmp / 'bomb-header', password, 40 * GIB, 512 * 1024 ** 2,
                                                   sqlite_header(65536, 40 * GIB // 65536)),
    }
