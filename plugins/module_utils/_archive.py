# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nexusctl's backup payload: a gzip'd POSIX ustar tar, written and read as a stream.

Layout (docs/nexus-behaviour.md §5): ``nexus.db`` (file), ``data/keys`` (directory, no trailing slash) and
``data/keys/*.key`` (files), no ``./`` prefix, modes as on disk. The writer emits the same header
bytes as Go's archive/tar (which nexusctl uses); the reader is strict, because a backup file is
untrusted input until proven otherwise. Compression is _gzip_stream's (parallel, store-or-deflate per
block); reading accepts any valid gzip. Private to this collection.

Reading does not use ``tarfile``: a small reader parses the 512-byte headers itself, accepts
plain files and the one directory nexusctl writes, at most one bounded extended header (PAX or
GNU long name) per member, and refuses sparse members, links, devices and anything else before
a byte of their content is written. What is written to disk is exactly what was read from the
gzip stream, so the decompression-bomb bounds hold for the files on disk too.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct

from ansible_collections.nexus.secrets.plugins.module_utils._gzip_stream import COMPRESS_LEVEL, ZLIB, GzipWriter
from ansible_collections.nexus.secrets.plugins.module_utils._iothreads import threaded_writes
from ansible_collections.nexus.secrets.plugins.module_utils._layout import DB_NAME, KEY_MEMBER_RE, KEYS_NAME

try:
    import grp
    import pwd
except ImportError:  # not on POSIX: names stay empty, as Go's archive/tar leaves them
    grp = pwd = None

CHUNK_SIZE = 1024 * 1024
BLOCK = 512

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

# The tar reader is this module's own (no tarfile): strict ustar, bounded before it reads.
ZERO_BLOCK = b'\0' * BLOCK
USTAR_MAGIC = b'ustar\x00'      # POSIX ustar and PAX (Go's archive/tar, nexusctl), any version
GNU_MAGIC = b'ustar  \x00'      # GNU tar's old format (base-256 sizes)
_OCTAL_RE = re.compile(br'^[0-7]+$')
FILE_TYPES = (b'0', b'\0')
DIR_TYPE = b'5'
PAX_TYPE = b'x'
GNU_LONGNAME_TYPE = b'L'
GNU_SPARSE_TYPE = b'S'
# An extended header before a member: Go writes PAX records for a long name, a size past 8 GiB or
# long owner names, a few hundred bytes. Larger ones are refused before they are read.
MAX_PAX_HEADER_BYTES = 64 * 1024
MAX_LONGNAME_BYTES = 4096
REFUSED_HEADER_TYPES = {
    b'g': 'a PAX global header (nexusctl never writes one)',
    b'K': 'a GNU long link name (links are not allowed)',
    b'X': 'a Solaris extended header (nexusctl never writes one)',
    b'D': 'a GNU dump directory (nexusctl never writes one)',
    b'M': 'a GNU multi-volume member (nexusctl never writes one)',
    b'V': 'a GNU volume header (nexusctl never writes one)',
}


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
        out.write(_ustar_header(name, st, FILE_TYPES[0], size, member_mode))
        if out.write_from(src, size) < size:
            raise ArchiveError('%s shrank while it was being archived' % path)
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
            gz.write(_ustar_header(KEYS_NAME, st, DIR_TYPE, 0, dir_mode))
            members.append({'name': KEYS_NAME, 'size': 0, 'type': 'dir', 'mode': dir_mode})
            for entry in sorted(os.listdir(keys_dir)):
                path = os.path.join(keys_dir, entry)
                name = KEYS_NAME + '/' + entry
                if entry.endswith('.key') and KEY_MEMBER_RE.match(name) and os.path.isfile(path) \
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

        Decompresses a chunk at a time and serves small reads (512-byte headers)
        from that, so the input is not re-copied for every small read.
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


class _Header(object):
    """One member as its (extended) headers describe it: nothing else of the header is used."""

    def __init__(self, name, typeflag, size, mode):
        self.name = name
        self.typeflag = typeflag
        self.size = size
        self.mode = mode


def _number(field, what):
    """A numeric header field: octal (spaces/NULs around it), or GNU base-256 (positive only)."""
    if field[:1] == b'\x80':
        return int.from_bytes(field[1:], 'big')
    if field[:1] and field[0] & 0x80:
        raise _HeaderError('negative or invalid %s field' % what)
    text = field.strip(b' \x00')
    if not text:
        return 0
    if not _OCTAL_RE.match(text):
        raise _HeaderError('invalid %s field %r' % (what, text[:12]))
    return int(text, 8)


def _text(data, what):
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise _HeaderError('%s is not UTF-8' % what)


def _nul_terminated(field):
    return field.split(b'\0', 1)[0]


class _HeaderError(Exception):
    """A header that no sane tar writer emits; becomes an ArchiveError naming the archive part."""


def _check_block(block):
    """Checksum and magic of one 512-byte header block (all-zero blocks are handled by the caller)."""
    stored = _number(block[148:156], 'checksum')
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = (sum(struct.unpack('148b', block[:148])) + 8 * 32 + sum(struct.unpack('356b', block[156:])))
    if stored not in (unsigned, signed):
        raise _HeaderError('bad header checksum')
    if block[257:263] != USTAR_MAGIC and block[257:265] != GNU_MAGIC:
        raise _HeaderError('not a POSIX ustar header')


def _pax_records(data):
    """``{key: value}`` of a PAX extended header (already bounded in size); refuses sparse files."""
    records = {}
    pos = 0
    while pos < len(data):
        if data[pos:] == b'\0' * (len(data) - pos):
            break  # NUL padding after the last record
        space = data.find(b' ', pos, pos + 12)
        length_text = data[pos:space] if space > pos else b''
        if not length_text.isdigit():
            raise _HeaderError('malformed PAX record')
        length = int(length_text)
        record = data[pos:pos + length]
        if length <= len(length_text) + 1 or len(record) != length or not record.endswith(b'\n'):
            raise _HeaderError('malformed PAX record')
        key, sep, value = record[len(length_text) + 1:-1].partition(b'=')
        if not sep:
            raise _HeaderError('malformed PAX record')
        key = _text(key, 'a PAX key')
        if key.startswith('GNU.sparse.'):
            raise _HeaderError('a sparse file (PAX %s): sparse members are not allowed, nexusctl never '
                               'writes them' % key)
        records[key] = value
        pos += length
    return records


def _read_exact(src, size):
    parts = []
    got = 0
    while got < size:
        piece = src.read(min(CHUNK_SIZE, size - got))
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b''.join(parts)


def _padding(size):
    return (BLOCK - size % BLOCK) % BLOCK


def _read_extension(src, typeflag, size):
    """The body of an extended header, refused before it is read when it is larger than any sane one."""
    bound = MAX_PAX_HEADER_BYTES if typeflag == PAX_TYPE else MAX_LONGNAME_BYTES
    what = 'PAX extended header' if typeflag == PAX_TYPE else 'GNU long-name header'
    if size > bound:
        raise _HeaderError('a %s of %d bytes (at most %d allowed)' % (what, size, bound))
    data = _read_exact(src, size + _padding(size))
    if len(data) != size + _padding(size):
        raise _HeaderError('the archive ends inside a %s' % what)
    return data[:size]


def _next_header(src, first):
    """The next member's header, or None at the end of the archive.

    At most one extended header (PAX ``x`` or GNU long name ``L``) before a member, each bounded
    before a byte of it is read; no chains, no global or vendor headers, no sparse files.
    """
    extension = None
    records = {}
    long_name = None
    while True:
        block = _read_exact(src, BLOCK)
        if not block:
            if first and extension is None:
                raise _HeaderError('empty archive')
            if extension is not None:
                raise _HeaderError('the archive ends after an extended header')
            return None  # end of data without the end-of-archive blocks, as tarfile and Go accept
        if len(block) != BLOCK:
            raise _HeaderError('truncated header')
        if block == ZERO_BLOCK:
            if extension is not None:
                raise _HeaderError('an extended header is followed by the end of the archive')
            if first:
                raise _HeaderError('empty archive')
            return None
        _check_block(block)
        typeflag = block[156:157]
        size = _number(block[124:136], 'size')
        if typeflag in (PAX_TYPE, GNU_LONGNAME_TYPE):
            if extension is not None:
                raise _HeaderError('chained extended headers (nexusctl writes at most one per member)')
            extension = typeflag
            data = _read_extension(src, typeflag, size)
            if typeflag == PAX_TYPE:
                records = _pax_records(data)
            else:
                long_name = _nul_terminated(data)
            continue
        if typeflag in REFUSED_HEADER_TYPES:
            raise _HeaderError(REFUSED_HEADER_TYPES[typeflag])
        name = _nul_terminated(block[0:100])
        prefix = _nul_terminated(block[345:500]) if block[257:263] == USTAR_MAGIC else b''
        if prefix:
            name = prefix + b'/' + name
        if long_name is not None:
            name = long_name
        if 'path' in records:
            name = records['path']
        if 'size' in records:
            if not records['size'].isdigit() or len(records['size']) > 20:
                raise _HeaderError('invalid PAX size %r' % records['size'][:20])
            size = int(records['size'])
        return _Header(_text(name, 'a member name'), typeflag, size, _number(block[100:108], 'mode'))


def _member_kind(info):
    """'file' or 'dir', or an ArchiveError naming what is not allowed."""
    name = info.name
    if name.startswith('/') or re.match(r'^[A-Za-z]:', name):
        raise ArchiveError('member %r has an absolute path' % name)
    if '..' in name.split('/'):
        raise ArchiveError('member %r contains ".."' % name)
    flag = info.typeflag
    if flag == b'2':
        raise ArchiveError('member %r is a symbolic link' % name)
    if flag == b'1':
        raise ArchiveError('member %r is a hard link' % name)
    if flag in (b'3', b'4'):
        raise ArchiveError('member %r is a device file' % name)
    if flag == b'6':
        raise ArchiveError('member %r is a FIFO' % name)
    if flag == GNU_SPARSE_TYPE:
        raise ArchiveError('member %r has an unsupported type %r (a sparse file: sparse members are not '
                           'allowed, nexusctl never writes them)' % (name, flag))
    if flag not in (FILE_TYPES + (DIR_TYPE,)):
        raise ArchiveError('member %r has an unsupported type %r' % (name, flag))
    if name == DB_NAME:
        expected, bound = 'file', MAX_MEMBER_BYTES[DB_NAME]
    elif name == KEYS_NAME:
        expected, bound = 'dir', 0
    elif KEY_MEMBER_RE.match(name):
        expected, bound = 'file', MAX_MEMBER_BYTES['key']
    else:
        raise ArchiveError('unexpected member %r (a nexusctl backup holds only nexus.db, data/keys '
                           'and data/keys/*.key)' % name)
    kind = 'dir' if flag == DIR_TYPE else 'file'
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


def _extract_file(src, info, target):
    """Copy exactly ``info.size`` bytes of the stream (what is written is what was read) and the padding."""
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
    pad = _padding(info.size)
    if pad and len(_read_exact(src, pad)) != pad:
        raise ArchiveError('member %r is truncated' % info.name)


def _extract_stream(src, staging_dir, max_total_bytes):
    """Read the tar straight from the gunzip stream, 512-byte header by header (no tarfile: its
    readers load extended headers whole and recurse over chains of them)."""
    gunzip = _GunzipReader(src, max_total_bytes)
    members = []
    seen = set()
    while True:
        try:
            info = _next_header(gunzip, first=not members)
        except _HeaderError as exc:
            if members:
                raise ArchiveError('the backup payload is not a valid tar archive (%s)' % exc)
            raise ArchiveError('the backup payload is not a tar archive (%s)' % exc)
        if info is None:
            break
        if len(seen) >= MAX_MEMBERS:
            raise ArchiveError('the archive has more than %d members' % MAX_MEMBERS)
        if info.typeflag == DIR_TYPE:
            info.name = info.name.rstrip('/')
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
            _extract_file(gunzip, info, target)
        members.append({'name': info.name, 'size': info.size, 'type': kind, 'mode': info.mode & 0o7777,
                        'path': target})
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
