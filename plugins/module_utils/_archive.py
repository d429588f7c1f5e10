# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nexusctl's backup payload: a gzip'd POSIX ustar tar, written and read as a stream.

Layout (docs/nexus-behaviour.md §5): ``nexus.db`` (file), ``data/keys`` (directory, no trailing slash) and
``data/keys/*.key`` (files), no ``./`` prefix, modes as on disk. The writer emits the same header
bytes as Go's archive/tar (which nexusctl uses); the reader is strict, because a backup file is
untrusted input until proven otherwise. Compression is _gzip_stream's (parallel, store-or-deflate per
block); reading accepts any valid gzip. Private to this collection.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tarfile

from ansible_collections.nexus.secrets.plugins.module_utils._gzip_stream import COMPRESS_LEVEL, ZLIB, GzipWriter
from ansible_collections.nexus.secrets.plugins.module_utils._iothreads import threaded_writes

try:
    import grp
    import pwd
except ImportError:  # not on POSIX: names stay empty, as Go's archive/tar leaves them
    grp = pwd = None

CHUNK_SIZE = 1024 * 1024
BLOCK = 512

DB_NAME = 'nexus.db'
KEYS_DIR_NAME = 'data/keys'
KEY_NAME_RE = re.compile(r'^data/keys/[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}\.key$')

# Sane upper bounds for what a NEXUS data directory can hold.
MAX_DB_BYTES = 64 * 1024 ** 3
MAX_KEY_BYTES = 1024 ** 2
MAX_MEMBERS = 64
# Upper bound per member kind: the database, and each data/keys/*.key file.
MAX_MEMBER_BYTES = {DB_NAME: MAX_DB_BYTES, 'key': MAX_KEY_BYTES}
# Decompressed bytes a reader accepts by default: every member at its bound plus tar overhead.
MAX_TOTAL_BYTES = MAX_DB_BYTES + MAX_MEMBERS * (MAX_KEY_BYTES + 2 * BLOCK) + 64 * BLOCK
# Gzip bomb guard: a NEXUS database is mostly ciphertext and barely compresses, while deflate can
# expand ~1000:1. Past BOMB_MIN_BYTES, a stream expanding more than BOMB_RATIO times is refused
# before it fills the staging filesystem (the size bounds alone allow 64 GiB of zeros).
BOMB_MIN_BYTES = 64 * 1024 ** 2
BOMB_RATIO = 100


class ArchiveError(Exception):
    """A user-facing reason why a backup payload is not acceptable."""


# ---------------------------------------------------------------------------------------------
# Writing


def _octal(value, width):
    """A NUL-terminated, zero-padded octal field, as Go's archive/tar writes it."""
    text = '%0*o' % (width - 1, value)
    if len(text) > width - 1:
        return None
    return text.encode('ascii') + b'\0'


def _numeric(value, width):
    """Octal when it fits, else the base-256 form (GNU/Go/Python readers all accept it)."""
    field = _octal(value, width)
    if field is not None:
        return field
    return bytes([0x80]) + value.to_bytes(width - 1, 'big')


def _owner_names(st):
    if pwd is None:
        return '', ''
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = ''
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = ''
    return user, group


def _ustar_header(name, st, typeflag, size, mode):
    encoded = name.encode('utf-8')
    if len(encoded) > 100:
        raise ArchiveError('member name too long for ustar: %s' % name)
    user, group = _owner_names(st)
    header = bytearray(BLOCK)
    header[0:len(encoded)] = encoded
    header[100:108] = _numeric(mode, 8)
    header[108:116] = _numeric(st.st_uid, 8)
    header[116:124] = _numeric(st.st_gid, 8)
    header[124:136] = _numeric(size, 12)
    header[136:148] = _numeric(int(st.st_mtime), 12)
    header[148:156] = b' ' * 8
    header[156:157] = typeflag
    header[257:265] = b'ustar\x0000'
    header[265:265 + len(user.encode('utf-8')[:31])] = user.encode('utf-8')[:31]
    header[297:297 + len(group.encode('utf-8')[:31])] = group.encode('utf-8')[:31]
    header[329:337] = _octal(0, 8)
    header[337:345] = _octal(0, 8)
    checksum = sum(header)
    header[148:156] = ('%06o' % checksum).encode('ascii') + b'\0 '
    return bytes(header)


def _write_file_member(out, name, path, mode=None, size=None):
    """Archive ``path`` as ``name``: its first ``size`` bytes (default: all of it)."""
    with open(path, 'rb') as src:
        st = os.fstat(src.fileno())
        member_mode = stat.S_IMODE(st.st_mode) if mode is None else mode
        size = st.st_size if size is None else size
        out.write(_ustar_header(name, st, tarfile.REGTYPE, size, member_mode))
        remaining = size
        while remaining:
            chunk = src.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise ArchiveError('%s shrank while it was being archived' % path)
            out.write(chunk)
            remaining -= len(chunk)
        if size % BLOCK:
            out.write(b'\0' * (BLOCK - size % BLOCK))
    return {'name': name, 'size': size, 'type': 'file', 'mode': member_mode}


def write_archive(out_fileobj, db_file, keys_dir, db_arcname=DB_NAME, db_mode=None, db_size=None,
                  level=COMPRESS_LEVEL):
    """Stream the gzip'd tar of ``db_file`` and ``keys_dir`` into ``out_fileobj``.

    Returns the members as ``[{'name', 'size', 'type', 'mode'}]``. ``db_mode`` overrides the mode
    recorded for the database (the snapshot is private; the archive records the live file's mode);
    ``db_size`` limits it to its first bytes (a live file may hold pages past the snapshot's end).
    A missing ``keys_dir`` yields an archive without key members.
    """
    gz = GzipWriter(out_fileobj, level)
    try:
        members = [_write_file_member(gz, db_arcname, db_file, db_mode, db_size)]
        if keys_dir is not None and os.path.isdir(keys_dir):
            st = os.stat(keys_dir)
            dir_mode = stat.S_IMODE(st.st_mode)
            gz.write(_ustar_header(KEYS_DIR_NAME, st, tarfile.DIRTYPE, 0, dir_mode))
            members.append({'name': KEYS_DIR_NAME, 'size': 0, 'type': 'dir', 'mode': dir_mode})
            for entry in sorted(os.listdir(keys_dir)):
                path = os.path.join(keys_dir, entry)
                name = KEYS_DIR_NAME + '/' + entry
                if entry.endswith('.key') and KEY_NAME_RE.match(name) and os.path.isfile(path) \
                        and not os.path.islink(path):
                    members.append(_write_file_member(gz, name, path))
        gz.write(b'\0' * (2 * BLOCK))  # end of archive, without record padding (as Go writes it)
        gz.close()
    except BaseException:
        gz.abort()
        raise
    return members


# ---------------------------------------------------------------------------------------------
# Reading


class _GunzipReader(object):
    """File-like gzip decompressor over a source, bounded in output, multi-member aware."""

    def __init__(self, src, max_total_bytes):
        self._src = src
        self._max = max_total_bytes
        self._pending = b''          # compressed bytes not yet fed to the decompressor
        self._decompressor = None
        self._started = False
        self._source_done = False
        self._out = b''              # decompressed bytes not yet returned, from self._pos on
        self._pos = 0
        self.total = 0
        self.compressed = 0          # bytes read from the source so far

    def _new_member(self):
        head = self._pending
        while len(head) < 2 and not self._source_done:
            more = self._src.read(CHUNK_SIZE)
            if not more:
                self._source_done = True
            self.compressed += len(more)
            head += more
        self._pending = head
        if not head:
            return False
        if head[:2] != b'\x1f\x8b':
            if self._started:
                raise ArchiveError('unexpected data after the end of the gzip stream')
            raise ArchiveError('the backup payload is not gzip data (not a nexusctl backup?)')
        self._started = True
        self._decompressor = ZLIB.decompressobj(31)
        return True

    def read(self, size=CHUNK_SIZE):
        """Up to ``size`` decompressed bytes; ``b''`` at the end of the last member.

        Decompresses a chunk at a time and serves small reads (tarfile reads 512-byte headers and
        10 KiB blocks) from that, so the input is not re-copied for every small read.
        """
        if size is None or size < 0:
            size = CHUNK_SIZE
        if self._pos >= len(self._out):
            self._out, self._pos = self._decompress_chunk(), 0
        piece = self._out[self._pos:self._pos + size]
        self._pos += len(piece)
        return piece

    def _decompress_chunk(self):
        while True:
            if self._decompressor is None or self._decompressor.eof:
                if self._decompressor is not None:
                    self._pending = self._decompressor.unused_data + self._pending
                if not self._new_member():
                    if not self._started:
                        raise ArchiveError('the backup payload is empty')
                    return b''
            data = self._pending
            if not data:
                if self._source_done:
                    raise ArchiveError('the gzip stream is truncated')
                data = self._src.read(CHUNK_SIZE)
                if not data:
                    self._source_done = True
                    continue
                self.compressed += len(data)
            try:
                out = self._decompressor.decompress(data, CHUNK_SIZE)
            except ZLIB.error as exc:
                raise ArchiveError('the gzip stream is corrupt: %s' % exc)
            self._pending = self._decompressor.unconsumed_tail
            if out:
                self.total += len(out)
                if self.total > self._max:
                    raise ArchiveError('the backup expands to more than %d bytes (decompression bomb?)'
                                       % self._max)
                if self.total > BOMB_MIN_BYTES and self.total > BOMB_RATIO * self.compressed:
                    raise ArchiveError('the backup expands more than %d times (%d bytes from %d): a decompression '
                                       'bomb, not NEXUS data' % (BOMB_RATIO, self.total, self.compressed))
                return out

    def drain(self):
        """Read to the end, so the gzip checksums (and an envelope's tag) are verified."""
        while self.read(CHUNK_SIZE):
            pass


def _member_kind(info):
    """'file' or 'dir', or an ArchiveError naming what is not allowed."""
    name = info.name
    if name.startswith('/') or re.match(r'^[A-Za-z]:', name):
        raise ArchiveError('member %r has an absolute path' % name)
    if '..' in name.split('/'):
        raise ArchiveError('member %r contains ".."' % name)
    if info.issym():
        raise ArchiveError('member %r is a symbolic link' % name)
    if info.islnk():
        raise ArchiveError('member %r is a hard link' % name)
    if info.ischr() or info.isblk():
        raise ArchiveError('member %r is a device file' % name)
    if info.isfifo():
        raise ArchiveError('member %r is a FIFO' % name)
    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
        raise ArchiveError('member %r has an unsupported type %r' % (name, info.type))
    if name == DB_NAME:
        expected, bound = 'file', MAX_MEMBER_BYTES[DB_NAME]
    elif name == KEYS_DIR_NAME:
        expected, bound = 'dir', 0
    elif KEY_NAME_RE.match(name):
        expected, bound = 'file', MAX_MEMBER_BYTES['key']
    else:
        raise ArchiveError('unexpected member %r (a nexusctl backup holds only nexus.db, data/keys '
                           'and data/keys/*.key)' % name)
    kind = 'dir' if info.isdir() else 'file'
    if kind != expected:
        raise ArchiveError('member %r should be a %s but is a %s' % (name, expected, kind))
    if info.size > bound:
        raise ArchiveError('member %r is too large (%d bytes, at most %d allowed)' % (name, info.size, bound))
    return kind


def _private_dir(path):
    try:
        os.mkdir(path, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST or os.path.islink(path) or not os.path.isdir(path):
            raise


def _extract_file(tar, info, target):
    src = tar.extractfile(info)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    with os.fdopen(fd, 'wb') as fh:
        # Decryption and gunzip here, writing in a worker thread: about equal halves.
        with threaded_writes(fh) as out:
            remaining = info.size
            while remaining:
                chunk = src.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise ArchiveError('member %r is truncated' % info.name)
                out.write(chunk)
                remaining -= len(chunk)


def _extract_stream(src, staging_dir, max_total_bytes):
    gunzip = _GunzipReader(src, max_total_bytes)
    members = []
    seen = set()
    try:
        tar = tarfile.open(fileobj=gunzip, mode='r|', errorlevel=2, bufsize=CHUNK_SIZE)
    except tarfile.ReadError as exc:
        raise ArchiveError('the backup payload is not a tar archive (%s)' % exc)
    try:
        for info in tar:
            if len(seen) >= MAX_MEMBERS:
                raise ArchiveError('the archive has more than %d members' % MAX_MEMBERS)
            info.name = info.name.rstrip('/') if info.isdir() else info.name
            kind = _member_kind(info)
            if info.name in seen:
                raise ArchiveError('member %r appears more than once' % info.name)
            seen.add(info.name)
            target = os.path.join(staging_dir, *info.name.split('/'))
            parent = staging_dir
            for part in info.name.split('/')[:-1]:
                parent = os.path.join(parent, part)
                _private_dir(parent)
            if kind == 'dir':
                _private_dir(target)
            else:
                _extract_file(tar, info, target)
            members.append({'name': info.name, 'size': info.size, 'type': kind, 'mode': info.mode & 0o7777,
                            'path': target})
    except tarfile.TarError as exc:
        raise ArchiveError('the backup payload is not a valid tar archive (%s)' % exc)
    gunzip.drain()
    return members


def extract_archive(tgz_fileobj_or_path, staging_dir, max_total_bytes=None):
    """Extract a nexusctl backup payload into ``staging_dir`` (which must exist and be private).

    Returns ``[{'name', 'size', 'type', 'mode', 'path'}]`` in archive order (``mode`` as recorded in
    the archive; files are created 0600 and directories 0700 whatever it says). Raises ArchiveError
    for anything outside nexusctl's layout. The input is read to its end, so when it is an
    ``EnvelopeReader`` the tag is verified before this returns.
    """
    limit = MAX_TOTAL_BYTES if max_total_bytes is None else max_total_bytes
    if not os.path.isdir(staging_dir):
        raise ArchiveError('staging directory %s does not exist' % staging_dir)
    if isinstance(tgz_fileobj_or_path, (str, bytes, os.PathLike)):
        try:
            src = open(tgz_fileobj_or_path, 'rb')
        except (IOError, OSError) as exc:
            raise ArchiveError('cannot read %s: %s' % (tgz_fileobj_or_path, exc.strerror or exc))
        with src:
            return _extract_stream(src, staging_dir, limit)
    return _extract_stream(tgz_fileobj_or_path, staging_dir, limit)
