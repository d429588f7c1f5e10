"""The archive reader's bounds: sparse members, extended headers, chains, and what it still accepts.

Archives are written here byte by byte (``raw_header``), because the interesting ones are those no
well-behaved writer makes. The memory cases run the reader in a child process and read its peak
RSS (a memory bound, not a timing assertion).
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._archive import ArchiveError, extract_archive
from tests.helpers.peak_rss import SOURCE as PEAK_RSS_SOURCE

BLOCK = 512
GIB = 1024 ** 3
DB = b'SQLite format 3\x00' + b'd' * 1500
KEY = b'ab' * 76
PEAK_RSS_LIMIT_KIB = 300 * 1024


def octal(value, width):
    """Octal when it fits, else GNU base-256 (as Go and GNU tar write big sizes)."""
    if value < 8 ** (width - 1):
        return ('%0*o' % (width - 1, value)).encode('ascii') + b'\0'
    return b'\x80' + value.to_bytes(width - 1, 'big')


def raw_header(name, size=0, typeflag=b'0', mode=0o600, magic=b'ustar\x0000', prefix=b'', size_field=None):
    """One 512-byte header block with a correct checksum."""
    name = name.encode('utf-8') if isinstance(name, str) else name
    block = bytearray(BLOCK)
    block[0:len(name)] = name[:100]
    block[100:108] = octal(mode, 8)
    block[108:116] = octal(0, 8)
    block[116:124] = octal(0, 8)
    block[124:136] = size_field if size_field is not None else octal(size, 12)
    block[136:148] = octal(1700000000, 12)
    block[148:156] = b' ' * 8
    block[156:157] = typeflag
    block[257:265] = magic
    block[345:345 + len(prefix)] = prefix
    block[148:156] = ('%06o' % sum(block)).encode('ascii') + b'\0 '
    return bytes(block)


def padded(data):
    return data + b'\0' * ((-len(data)) % BLOCK)


def file_member(name, data, **kw):
    return raw_header(name, len(data), **kw) + padded(data)


def pax_record(key, value):
    body = (' %s=%s\n' % (key, value)).encode('utf-8')
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode('ascii') + body


def pax_header(records, declared=None):
    """A PAX 'x' header carrying ``records`` (bytes); ``declared`` overrides its size field."""
    size = len(records) if declared is None else declared
    return raw_header('PaxHeaders.0/member', size, typeflag=b'x') + padded(records)


def long_name(name_bytes, declared=None):
    size = len(name_bytes) if declared is None else declared
    return raw_header('././@LongLink', size, typeflag=b'L') + padded(name_bytes)


END = b'\0' * (2 * BLOCK)


def keys_dir():
    return raw_header('data/keys', typeflag=b'5', mode=0o700)


def sparse_pax_db(realsize=4 * GIB):
    """GNU sparse format 1.0 in PAX records: tarfile would write a ``realsize`` nexus.db from a few KiB."""
    records = (pax_record('GNU.sparse.major', '1') + pax_record('GNU.sparse.minor', '0')
               + pax_record('GNU.sparse.name', 'nexus.db') + pax_record('GNU.sparse.realsize', str(realsize)))
    sparse_map = padded(b'1\n%d\n%d\n' % (realsize - BLOCK, BLOCK))
    body = sparse_map + b'x' * BLOCK
    return pax_header(records) + raw_header('GNUSparseFile.0/nexus.db', len(body)) + body + END


def sparse_pax_old_db(realsize=4 * GIB):
    """GNU sparse format 0.1 (GNU.sparse.map) in PAX records."""
    records = (pax_record('GNU.sparse.size', str(realsize)) + pax_record('GNU.sparse.numblocks', '1')
               + pax_record('GNU.sparse.map', '%d,%d' % (realsize - BLOCK, BLOCK)))
    return pax_header(records) + file_member('nexus.db', b'x' * BLOCK) + END


def gnu_sparse_db():
    """An old GNU sparse header (type 'S', realsize in the GNU area)."""
    block = bytearray(raw_header('nexus.db', BLOCK, typeflag=b'S', magic=b'ustar  \x00'))
    block[386:398] = octal(BLOCK * 2, 12)  # first sparse entry: offset, numbytes
    block[398:410] = octal(BLOCK, 12)
    block[483:495] = octal(4 * GIB, 12)    # realsize
    block[148:156] = b' ' * 8
    block[148:156] = ('%06o' % sum(block)).encode('ascii') + b'\0 '
    return bytes(block) + b'x' * BLOCK + END


def chained_long_names(count=5000):
    out = b''.join(long_name(b'data/keys/x%05d.key\0' % i) for i in range(count))
    return out + file_member('data/keys/master.key', KEY) + END


BIG_COMMENT = pax_record('comment', 'a' * (19 * 1024 ** 2))
HOSTILE = {
    # case: (tar bytes builder, pinned reason)
    'pax-gnu-sparse-1.0': (sparse_pax_db, 'sparse file (PAX GNU.sparse.major)'),
    'pax-gnu-sparse-0.1': (sparse_pax_old_db, 'sparse file (PAX GNU.sparse.size)'),
    'gnu-sparse-type': (gnu_sparse_db, "member 'nexus.db' has an unsupported type b'S' (a sparse file"),
    'pax-header-19MB': (lambda: pax_header(BIG_COMMENT) + file_member('nexus.db', DB) + END,
                        'a PAX extended header of %d bytes (at most 65536 allowed)' % len(BIG_COMMENT)),
    'longname-19MB': (lambda: long_name(b'n' * (19 * 1024 ** 2)) + file_member('nexus.db', DB) + END,
                      'a GNU long-name header of 19922944 bytes (at most 4096 allowed)'),
    'pax-declared-1TiB': (lambda: pax_header(b'', declared=1024 ** 4) + END,
                          'a PAX extended header of 1099511627776 bytes (at most 65536 allowed)'),
    'chained-long-names-5000': (chained_long_names, 'chained extended headers'),
    'chained-pax': (lambda: pax_header(pax_record('path', 'nexus.db')) * 2 + file_member('nexus.db', DB) + END,
                    'chained extended headers'),
    'pax-then-long-name': (lambda: pax_header(pax_record('path', 'nexus.db')) + long_name(b'nexus.db\0')
                           + file_member('x', DB) + END, 'chained extended headers'),
    'global-header': (lambda: raw_header('pax_global_header', 0, typeflag=b'g') + file_member('nexus.db', DB) + END,
                      'a PAX global header'),
    'long-link-name': (lambda: raw_header('././@LongLink', 10, typeflag=b'K') + padded(b'/etc/shadow')
                       + file_member('nexus.db', DB) + END, 'a GNU long link name'),
    'malformed-pax-record': (lambda: pax_header(b'99 path=nexus.db\n') + file_member('nexus.db', DB) + END,
                             'malformed PAX record'),
    'zero-length-pax-record': (lambda: pax_header(b'0 \n' * 4) + file_member('nexus.db', DB) + END,
                               'malformed PAX record'),
    'pax-size-not-a-number': (lambda: pax_header(pax_record('size', '1e9')) + file_member('nexus.db', DB) + END,
                              'invalid PAX size'),
    'pax-size-huge-digits': (lambda: pax_header(pax_record('size', '9' * 5000)) + file_member('nexus.db', DB)
                             + END, 'invalid PAX size'),
    'extended-header-at-end': (lambda: file_member('nexus.db', DB) + pax_header(pax_record('path', 'x')) + END,
                               'an extended header is followed by the end of the archive'),
    'key-name-with-newline': (lambda: file_member('data/keys/master.key\n', KEY) + END,
                              "unexpected member 'data/keys/master.key\\n'"),
    'directory-with-data': (lambda: raw_header('data/keys', 512, typeflag=b'5') + b'x' * BLOCK + END,
                            "member 'data/keys' is too large"),
    'negative-base256-size': (lambda: raw_header('nexus.db', size_field=b'\xff' * 12) + END,
                              'negative or invalid size field'),
    'not-ustar-magic': (lambda: raw_header('nexus.db', len(DB), magic=b'\0' * 8) + padded(DB) + END,
                        'not a POSIX ustar header'),
    'bad-checksum': (lambda: raw_header('nexus.db', len(DB))[:148] + b'0000000\0' + raw_header('nexus.db')[156:]
                     + padded(DB) + END, 'bad header checksum'),
    'pax-path-traversal-behind-long-name': (lambda: pax_header(pax_record('path', 'data/keys/../../../x.key'))
                                            + file_member('nexus.db', DB) + END, '".."'),
}


def staged(tmp_path, name='staging'):
    path = tmp_path / name
    path.mkdir(mode=0o700)
    return path


def written_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, dummy, files in os.walk(str(root)) for f in files)


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_hostile_headers_are_refused_with_a_pinned_reason(case, tmp_path):
    build, reason = HOSTILE[case]
    staging = staged(tmp_path)
    with pytest.raises(ArchiveError) as caught:
        extract_archive(io.BytesIO(gzip.compress(build(), 1)), str(staging))
    assert reason in str(caught.value), str(caught.value)
    assert written_bytes(staging) <= len(DB)  # at most a valid member before the bad header


def test_the_sparse_archive_is_what_it_claims_for_tarfile():
    """The crafted input is a real attack: tarfile reads a 4 GiB nexus.db out of a few KiB."""
    raw = sparse_pax_db()
    assert len(raw) < 8 * 1024
    info = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()[0]
    assert info.name == 'nexus.db' and info.size == 4 * GIB and info.sparse


# --- accepted: what nexusctl (Go's archive/tar) or a sane writer emits --------------------------------

def test_go_style_pax_records_are_accepted(tmp_path):
    """Go writes PAX records for long owner names or big ids; path/size records are honoured."""
    records = (pax_record('uname', 'u' * 40) + pax_record('gname', 'g' * 40) + pax_record('uid', '3000000')
               + pax_record('mtime', '1700000000.123456789') + pax_record('SCHILY.xattr.user.x', 'y'))
    tar = (pax_header(records) + file_member('nexus.db', DB, mode=0o644) + keys_dir()
           + pax_header(pax_record('path', 'data/keys/master.key') + pax_record('size', str(len(KEY))))
           + raw_header('PaxHeaders.0/truncated-name', 0) + padded(KEY) + END)
    members = extract_archive(io.BytesIO(gzip.compress(tar)), str(staged(tmp_path)))
    assert [(m['name'], m['size'], m['mode']) for m in members] == [
        ('nexus.db', len(DB), 0o644), ('data/keys', 0, 0o700), ('data/keys/master.key', len(KEY), 0o600)]
    assert (tmp_path / 'staging' / 'data' / 'keys' / 'master.key').read_bytes() == KEY


def test_gnu_long_name_ustar_prefix_gnu_magic_and_base256_are_accepted(tmp_path):
    size256 = b'\x80' + len(DB).to_bytes(11, 'big')
    tar = (long_name(b'nexus.db\0') + raw_header('ignored', size_field=size256, magic=b'ustar  \x00') + padded(DB)
           + raw_header('master.key', len(KEY), prefix=b'data/keys') + padded(KEY) + END)
    members = extract_archive(io.BytesIO(gzip.compress(tar)), str(staged(tmp_path)))
    assert [m['name'] for m in members] == ['nexus.db', 'data/keys/master.key']
    assert (tmp_path / 'staging' / 'nexus.db').read_bytes() == DB


def test_python_tarfile_pax_and_gnu_formats_are_accepted(tmp_path):
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode='w', format=fmt) as tar:
            info = tarfile.TarInfo('nexus.db')
            info.size, info.uname = len(DB), 'n\u00e9xus'  # non-ASCII owner: a PAX record
            tar.addfile(info, io.BytesIO(DB))
        members = extract_archive(io.BytesIO(gzip.compress(raw.getvalue())), str(staged(tmp_path, str(fmt))))
        assert [(m['name'], m['size']) for m in members] == [('nexus.db', len(DB))]


def test_an_archive_without_end_blocks_is_read_to_its_last_member(tmp_path):
    members = extract_archive(io.BytesIO(gzip.compress(file_member('nexus.db', DB))), str(staged(tmp_path)))
    assert [m['name'] for m in members] == ['nexus.db']


def test_only_end_blocks_is_not_a_tar_archive(tmp_path):
    with pytest.raises(ArchiveError, match=r'not a tar archive \(empty archive\)'):
        extract_archive(io.BytesIO(gzip.compress(END)), str(staged(tmp_path)))


# --- memory: the refusing process stays small -----------------------------------------------------------

CHILD = PEAK_RSS_SOURCE + textwrap.dedent('''
    import os, sys
    from ansible_collections.nexus.secrets.plugins.module_utils._archive import ArchiveError, extract_archive
    src, staging = sys.argv[1], sys.argv[2]
    try:
        extract_archive(src, staging)
        reason = 'ACCEPTED'
    except ArchiveError as exc:
        reason = str(exc)
    print(peak_rss_kib())
    print(reason)
''')


@pytest.mark.parametrize('case', ['pax-header-19MB', 'longname-19MB', 'chained-long-names-5000',
                                  'pax-gnu-sparse-1.0', 'gnu-sparse-type'])
def test_refusal_peak_memory_is_bounded(case, tmp_path):
    build, reason = HOSTILE[case]
    src = tmp_path / 'payload.tgz'
    src.write_bytes(gzip.compress(build(), 6))
    staging = staged(tmp_path)
    proc = subprocess.run([sys.executable, '-c', CHILD, str(src), str(staging)], capture_output=True, text=True,
                          check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    peak_kib, got = proc.stdout.split('\n', 1)
    assert reason in got, got
    assert int(peak_kib) < PEAK_RSS_LIMIT_KIB, 'peak RSS %s KiB refusing %s' % (peak_kib, case)
    assert written_bytes(staging) == 0


def test_the_memory_probe_sees_a_big_allocation(tmp_path):
    """The child's measure does register a large allocation (so the bound above can fail), and does not
    count the parent's: a child that allocates nothing stays far below the bound."""
    big = PEAK_RSS_SOURCE + 'b = bytearray(400 * 1024 * 1024)\nb[::4096] = b"x" * len(b[::4096])\nprint(peak_rss_kib())'
    proc = subprocess.run([sys.executable, '-c', big], capture_output=True, text=True, check=True)
    assert int(proc.stdout) > PEAK_RSS_LIMIT_KIB
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b'x' * len(ballast[::4096])  # this process now holds 400 MiB
    small = PEAK_RSS_SOURCE + 'print(peak_rss_kib())'
    proc = subprocess.run([sys.executable, '-c', small], capture_output=True, text=True, check=True)
    assert int(proc.stdout) < PEAK_RSS_LIMIT_KIB // 4
    del ballast
