"""The backup payload: nexusctl's tar layout written exactly, and a strict reader.

Malicious archives are built here with the standard tarfile module.
"""

import gzip
import io
import os
import stat
import tarfile
import zlib

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _archive, _gzip_stream
from ansible_collections.nexus.secrets.plugins.module_utils._archive import ArchiveError, extract_archive, write_archive
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeReader

from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, NEXUSCTL_BACKUP

KEYS = ('master.key', 'signing.key', 'verify.key', 'age.key')


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / 'data'
    keys = root / 'data' / 'keys'
    keys.mkdir(parents=True)
    os.chmod(keys, 0o700)
    db = root / 'nexus.db'
    db.write_bytes(os.urandom(70000))
    os.chmod(db, 0o644)
    for name in KEYS:
        (keys / name).write_bytes(os.urandom(32).hex().encode())
        os.chmod(keys / name, 0o600)
    (keys / 'notes.txt').write_text('not a key')
    return root


@pytest.fixture
def staging(tmp_path):
    path = tmp_path / 'staging'
    path.mkdir(mode=0o700)
    return path


def build(members, order=None):
    """A gzip'd tar from (TarInfo, bytes|None) pairs."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def member(name, data=b'', kind=tarfile.REGTYPE, mode=0o600, **extra):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in extra.items():
        setattr(info, key, value)
    return info, (data if kind == tarfile.REGTYPE else None)


def good_members():
    return [member('nexus.db', b'SQLite format 3\x00' + b'x' * 1000, mode=0o644),
            member('data/keys', kind=tarfile.DIRTYPE, mode=0o700),
            member('data/keys/master.key', b'ab' * 76)]


def listing(staging):
    return sorted(str(p.relative_to(staging)) for p in staging.rglob('*'))


def test_round_trip_with_modes(data_dir, staging):
    out = io.BytesIO()
    written = write_archive(out, str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'))
    assert [m['name'] for m in written] == ['nexus.db', 'data/keys'] + ['data/keys/' + k for k in sorted(KEYS)]
    assert written[0] == {'name': 'nexus.db', 'size': 70000, 'type': 'file', 'mode': 0o644}
    assert written[1] == {'name': 'data/keys', 'size': 0, 'type': 'dir', 'mode': 0o700}
    extracted = extract_archive(io.BytesIO(out.getvalue()), str(staging))
    assert [{k: m[k] for k in ('name', 'size', 'type', 'mode')} for m in extracted] == written
    assert (staging / 'nexus.db').read_bytes() == (data_dir / 'nexus.db').read_bytes()
    for name in KEYS:
        path = staging / 'data' / 'keys' / name
        assert path.read_bytes() == (data_dir / 'data' / 'keys' / name).read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((staging / 'nexus.db').stat().st_mode) == 0o600
    for directory in (staging / 'data', staging / 'data' / 'keys'):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_written_tar_matches_go_archive_tar_layout(data_dir):
    """Raw headers: ustar magic, no trailing slash on the directory, no record padding."""
    out = io.BytesIO()
    write_archive(out, str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'), db_mode=0o600)
    raw = gzip.decompress(out.getvalue())
    assert raw[:8] == b'nexus.db' and raw[257:265] == b'ustar\x0000'
    assert raw[100:108] == b'0000600\x00'
    dir_header = raw[512 + 70144:512 + 70144 + 512]
    assert dir_header[:10] == b'data/keys\x00' and dir_header[156:157] == b'5'
    assert raw[-1024:] == b'\0' * 1024 and len(raw) % 512 == 0
    names = tarfile.open(fileobj=io.BytesIO(raw)).getnames()
    assert names == ['nexus.db', 'data/keys'] + ['data/keys/' + k for k in sorted(KEYS)]


def test_header_bytes_equal_nexusctl_fixture(tmp_path, staging):
    """Extract the nexusctl fixture, write it again: every header byte equal but mtime and checksum."""
    with open(NEXUSCTL_BACKUP, 'rb') as src:
        members = extract_archive(EnvelopeReader(src, BACKUP_PASSWORD), str(staging))
    modes = {m['name']: m['mode'] for m in members}
    for m in members:
        os.chmod(m['path'], m['mode'])
    ours = io.BytesIO()
    write_archive(ours, str(staging / 'nexus.db'), str(staging / 'data' / 'keys'))
    with open(NEXUSCTL_BACKUP, 'rb') as src:
        theirs = EnvelopeReader(src, BACKUP_PASSWORD).read()
    ours_raw, theirs_raw = gzip.decompress(ours.getvalue()), gzip.decompress(theirs)
    assert len(ours_raw) == len(theirs_raw)
    offset = 0
    for m in members:
        a, b = bytearray(ours_raw[offset:offset + 512]), bytearray(theirs_raw[offset:offset + 512])
        for lo, hi in ((108, 124), (136, 156), (265, 329)):  # uid/gid, mtime/checksum, owner names
            a[lo:hi] = b[lo:hi] = b'\0' * (hi - lo)
        assert a == b, m['name']
        assert int(theirs_raw[offset + 100:offset + 107], 8) == modes[m['name']]
        offset += 512 + (m['size'] + 511) // 512 * 512


def test_nexusctl_fixture_extracts(staging):
    with open(NEXUSCTL_BACKUP, 'rb') as src:
        members = extract_archive(EnvelopeReader(src, BACKUP_PASSWORD), str(staging))
    names = {m['name'] for m in members}
    assert names == {'nexus.db', 'data/keys'} | {'data/keys/' + k for k in KEYS}
    assert (staging / 'nexus.db').read_bytes()[:16] == b'SQLite format 3\x00'


def test_either_order_and_absent_members(staging, tmp_path):
    keys_first = [member('data/keys', kind=tarfile.DIRTYPE, mode=0o700), member('data/keys/age.key', b'k'),
                  member('nexus.db', b'db')]
    assert [m['name'] for m in extract_archive(io.BytesIO(build(keys_first)), str(staging))] == \
        ['data/keys', 'data/keys/age.key', 'nexus.db']
    only_db = tmp_path / 'only-db'
    only_db.mkdir()
    assert [m['name'] for m in extract_archive(io.BytesIO(build([member('nexus.db', b'db')])), str(only_db))] \
        == ['nexus.db']
    keys_no_dir = tmp_path / 'keys-no-dir'
    keys_no_dir.mkdir()
    extract_archive(io.BytesIO(build([member('data/keys/master.key', b'k')])), str(keys_no_dir))
    assert (keys_no_dir / 'data' / 'keys' / 'master.key').read_bytes() == b'k'


def test_accepts_a_path_and_a_trailing_slash_directory(staging, tmp_path):
    path = tmp_path / 'a.tgz'
    path.write_bytes(build([member('data/keys/', kind=tarfile.DIRTYPE)] + good_members()[::2]))
    assert [m['name'] for m in extract_archive(str(path), str(staging))] == ['data/keys', 'nexus.db',
                                                                             'data/keys/master.key']


def test_without_isal_the_stdlib_codec_round_trips(data_dir, staging, monkeypatch):
    monkeypatch.setattr(_archive, 'ZLIB', zlib)
    monkeypatch.setattr(_gzip_stream, 'ZLIB', zlib)
    out = io.BytesIO()
    write_archive(out, str(data_dir / 'nexus.db'), None)
    assert tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode='r:gz').getnames() == ['nexus.db']
    assert [m['name'] for m in extract_archive(io.BytesIO(out.getvalue()), str(staging))] == ['nexus.db']


def test_multi_member_gzip_is_read(staging):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.USTAR_FORMAT) as tar:
        info, data = member('nexus.db', b'd' * 5000)
        tar.addfile(info, io.BytesIO(data))
    payload = raw.getvalue()
    split = gzip.compress(payload[:1000]) + gzip.compress(payload[1000:])
    assert extract_archive(io.BytesIO(split), str(staging))[0]['size'] == 5000


MALICIOUS = {
    'absolute path': ([member('/etc/nexus.db', b'x')], 'absolute path'),
    'dot-dot': ([member('data/keys/../../evil.key', b'x')], '".."'),
    'dot-dot at top': ([member('../nexus.db', b'x')], '".."'),
    'symlink': ([member('nexus.db', kind=tarfile.SYMTYPE, linkname='/etc/passwd')], 'symbolic link'),
    'symlink dir': ([member('data/keys', kind=tarfile.SYMTYPE, linkname='/tmp')], 'symbolic link'),
    'hard link': ([member('data/keys/master.key', kind=tarfile.LNKTYPE, linkname='/etc/shadow')], 'hard link'),
    'char device': ([member('nexus.db', kind=tarfile.CHRTYPE, devmajor=1, devminor=3)], 'device'),
    'block device': ([member('nexus.db', kind=tarfile.BLKTYPE, devmajor=8, devminor=0)], 'device'),
    'fifo': ([member('data/keys/age.key', kind=tarfile.FIFOTYPE)], 'FIFO'),
    'duplicate file': (good_members() + [member('nexus.db', b'second')], 'more than once'),
    'duplicate dir': ([member('data/keys', kind=tarfile.DIRTYPE)] * 2, 'more than once'),
    'outside layout': ([member('etc/passwd', b'x')], 'unexpected member'),
    'dot-slash prefix': ([member('./nexus.db', b'x')], 'unexpected member'),
    'non-key file in keys': ([member('data/keys/notes.txt', b'x')], 'unexpected member'),
    'nested in keys': ([member('data/keys/sub/master.key', b'x')], 'unexpected member'),
    'parent dir member': ([member('data', kind=tarfile.DIRTYPE)], 'unexpected member'),
    'db as directory': ([member('nexus.db', kind=tarfile.DIRTYPE)], 'should be a file'),
    'keys dir as file': ([member('data/keys', b'x')], 'should be a dir'),
    'oversize key': ([member('data/keys/master.key', b'\0' * (_archive.MAX_MEMBER_BYTES['key'] + 1))], 'too large'),
}


@pytest.mark.parametrize('kind', sorted(MALICIOUS))
def test_malicious_members_are_rejected(kind, tmp_path, staging):
    members, message = MALICIOUS[kind]
    with pytest.raises(ArchiveError, match=message):
        extract_archive(io.BytesIO(build(members)), str(staging))
    # Nothing outside staging, nothing but plain files and private dirs inside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['staging']
    for path in staging.rglob('*'):
        assert not path.is_symlink() and (path.is_dir() or path.is_file())


def test_oversize_database_is_rejected_from_its_header(staging, monkeypatch):
    monkeypatch.setitem(_archive.MAX_MEMBER_BYTES, 'nexus.db', 4096)
    with pytest.raises(ArchiveError, match='too large'):
        extract_archive(io.BytesIO(build([member('nexus.db', b'\0' * 5000)])), str(staging))


def test_too_many_members(staging, monkeypatch):
    monkeypatch.setattr(_archive, 'MAX_MEMBERS', 3)
    members = [member('data/keys/k%d.key' % i, b'x') for i in range(5)]
    with pytest.raises(ArchiveError, match='more than 3 members'):
        extract_archive(io.BytesIO(build(members)), str(staging))


def test_gzip_bomb_is_bounded(staging):
    """A 1 MiB limit on decompressed bytes stops a member that expands beyond it."""
    bomb = build([member('nexus.db', b'\0' * (8 * 1024 * 1024))])
    assert len(bomb) < 64 * 1024
    with pytest.raises(ArchiveError, match='decompression bomb'):
        extract_archive(io.BytesIO(bomb), str(staging), max_total_bytes=1024 * 1024)


def test_bomb_after_the_end_of_the_tar_is_bounded(staging):
    padding = gzip.compress(b'\0' * (4 * 1024 * 1024))
    with pytest.raises(ArchiveError, match='decompression bomb'):
        extract_archive(io.BytesIO(build(good_members()) + padding), str(staging), max_total_bytes=1024 * 1024)


# Explicit ids: xdist workers must collect identical test names, and gzip headers carry the time.
@pytest.mark.parametrize('payload,message', [
    (b'', 'empty'),
    (b'PK\x03\x04 a zip file', 'not gzip'),
    (os.urandom(4096), 'not gzip'),
    (gzip.compress(b''), 'not a tar'),
    (gzip.compress(b'hello, this is plainly not a tar archive' * 40), 'not a tar'),
    (gzip.compress(os.urandom(10240)), 'not a tar'),
], ids=['empty', 'zip', 'random', 'empty-gzip', 'gzip-text', 'gzip-random'])
def test_non_gzip_or_non_tar_payload(staging, payload, message):
    with pytest.raises(ArchiveError, match=message):
        extract_archive(io.BytesIO(payload), str(staging))


def test_truncated_gzip(staging):
    good = build(good_members())
    with pytest.raises(ArchiveError, match='truncated|not a valid tar'):
        extract_archive(io.BytesIO(good[:len(good) // 2]), str(staging))


def test_corrupt_gzip_checksum(staging):
    good = bytearray(build(good_members()))
    good[-5] ^= 0xFF  # CRC32 in the gzip trailer
    with pytest.raises(ArchiveError, match='corrupt'):
        extract_archive(io.BytesIO(bytes(good)), str(staging))


def test_garbage_after_gzip(staging):
    with pytest.raises(ArchiveError, match='after the end'):
        extract_archive(io.BytesIO(build(good_members()) + b'garbage'), str(staging))


def test_missing_staging_or_source(tmp_path):
    with pytest.raises(ArchiveError, match='does not exist'):
        extract_archive(io.BytesIO(build(good_members())), str(tmp_path / 'nope'))
    with pytest.raises(ArchiveError, match='cannot read'):
        extract_archive(str(tmp_path / 'missing.tgz'), str(tmp_path))


def test_existing_file_in_staging_is_never_followed(staging, tmp_path):
    target = tmp_path / 'victim'
    target.write_text('keep')
    os.symlink(str(target), str(staging / 'nexus.db'))
    with pytest.raises(OSError):
        extract_archive(io.BytesIO(build([member('nexus.db', b'evil')])), str(staging))
    assert target.read_text() == 'keep'


def test_key_files_that_are_not_keys_are_not_archived(data_dir):
    os.symlink(str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys' / 'link.key'))
    out = io.BytesIO()
    names = [m['name'] for m in write_archive(out, str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'))]
    assert 'data/keys/notes.txt' not in names and 'data/keys/link.key' not in names
    assert len(names) == 6


def test_base256_size_field():
    field = _archive._numeric(9 * 1024 ** 3, 12)
    assert field[0] == 0x80 and int.from_bytes(field[1:], 'big') == 9 * 1024 ** 3
    assert _archive._numeric(0o644, 8) == b'0000644\x00'


def test_bomb_is_refused_by_its_expansion_ratio_long_before_the_size_bounds(staging, monkeypatch):
    """A member of zeros within every size bound still cannot fill staging: >100x expansion stops it."""
    monkeypatch.setattr(_archive, 'BOMB_MIN_BYTES', 2 * 1024 * 1024)
    bomb = build([member('nexus.db', b'\0' * (16 * 1024 * 1024))])
    with pytest.raises(ArchiveError, match='expands more than 100 times'):
        extract_archive(io.BytesIO(bomb), str(staging))
    assert os.path.getsize(str(staging / 'nexus.db')) < 8 * 1024 * 1024


def test_incompressible_data_is_never_taken_for_a_bomb(data_dir, staging, monkeypatch):
    monkeypatch.setattr(_archive, 'BOMB_MIN_BYTES', 1024)
    out = io.BytesIO()
    write_archive(out, str(data_dir / 'nexus.db'), str(data_dir / 'data' / 'keys'))
    assert len(extract_archive(io.BytesIO(out.getvalue()), str(staging))) == 6
