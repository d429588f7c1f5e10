"""Fuzz the archive reader (``_archive.extract_archive``) and the whole staging path
(``_verify.stage_backup``: envelope + gzip + tar + SQLite checks).

Inputs: random bytes; a valid nexusctl-layout archive truncated or bit-flipped at the gzip layer;
the same archive's tar mutated and gzipped again (so the tar parser sees it); and a valid backup
decrypted, mutated and re-sealed with the right password (so every inner layer is reached behind
a passing GCM tag). Outcomes: ``ArchiveError``/``BackupInvalid`` with a message, or success that
yields exactly the original files - never another exception, never a file outside staging.
"""

from __future__ import annotations

import binascii
import gzip
import io
import json
import os
import shutil
import stat
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.nexus.secrets.plugins.module_utils import _archive, _crypto, _layout, _verify
from tests.integration.restore.backups import leftovers, make_backup, make_data_dir, snapshot_beside_restore_state
from tests.reliability.fuzzing import memoised_kdf  # noqa: F401 (fixture)  # pylint: disable=unused-import
from tests.reliability.fuzzing import fuzz_settings, mutate, restore_each_then_list, tree, write_backups

PASSWORD = 'fuzz-archive-password'
KEY_PASSWORD = 'fuzz-archive-key-password'
SALT, NONCE = b'A' * 16, b'R' * 12
LAYOUT = {'nexus.db', 'data', 'data/keys'}

flips = st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=3)
cuts = st.one_of(st.none(), st.integers(0, 10 ** 6))


@pytest.fixture(scope='module')
def valid(tmp_path_factory):
    """A real data dir and its archive: gzip bytes, tar bytes, the expected files."""
    root = tmp_path_factory.mktemp('fuzz-archive')
    data = make_data_dir(root / 'data', live=5, key_password=KEY_PASSWORD)
    out = io.BytesIO()
    _archive.write_archive(out, str(data / 'nexus.db'), str(data / 'data' / 'keys'))
    files = {'nexus.db': (data / 'nexus.db').read_bytes()}
    for name in os.listdir(str(data / 'data' / 'keys')):
        files['data/keys/' + name] = (data / 'data' / 'keys' / name).read_bytes()
    return dict(root=root, data=data, tgz=out.getvalue(), tar=gzip.decompress(out.getvalue()), files=files)


def extract(source):
    """Run the reader on ``source`` in a fresh parent dir; return (ArchiveError or members, files)."""
    parent = tempfile.mkdtemp(prefix='fuzz-archive-')
    staging = os.path.join(parent, 'staging')
    os.mkdir(staging, 0o700)
    try:
        try:
            got = _archive.extract_archive(source, staging)
        except _archive.ArchiveError as exc:
            assert str(exc)
            got = exc
        # Nothing outside staging, no links or special files inside it.
        assert set(tree(parent)) <= {'staging'} | set('staging/' + p for p in tree(staging))
        files = {}
        for rel in tree(staging):
            st_ = os.lstat(os.path.join(staging, rel))
            assert stat.S_ISREG(st_.st_mode) or stat.S_ISDIR(st_.st_mode), rel
            assert rel in LAYOUT or _layout.KEY_MEMBER_RE.match(rel), rel
            if stat.S_ISREG(st_.st_mode):
                with open(os.path.join(staging, rel), 'rb') as fh:
                    files[rel] = fh.read()
        return got, files
    finally:
        shutil.rmtree(parent)


@fuzz_settings(300)
@given(flips, cuts, st.binary(max_size=16))
def test_gzip_layer_mutations(valid, flip, cut, insert):
    damaged = mutate(valid['tgz'], flip, cut, insert)
    got, files = extract(io.BytesIO(damaged))
    if not isinstance(got, _archive.ArchiveError):
        # Only bytes gzip does not protect (header flags/mtime/OS) may change: the content must not.
        assert files == valid['files']


@fuzz_settings(200)
@given(st.integers(0, 10 ** 6))
def test_truncations_are_always_refused(valid, cut):
    cut %= len(valid['tgz'])
    got, dummy = extract(io.BytesIO(valid['tgz'][:cut]))
    assert isinstance(got, _archive.ArchiveError)


@fuzz_settings(300)
@given(flips, cuts, st.binary(max_size=600))
def test_tar_layer_mutations(valid, flip, cut, insert):
    damaged_tar = mutate(valid['tar'], flip, cut, insert)
    got, files = extract(io.BytesIO(gzip.compress(damaged_tar)))
    if not isinstance(got, _archive.ArchiveError):
        names = {m['name'] for m in got}
        assert names <= LAYOUT | set(f for f in files)
        for member in got:
            if member['type'] == 'file':
                assert len(files[member['name']]) == member['size']


@fuzz_settings(200)
@given(st.binary(max_size=4096))
def test_random_bytes(blob):
    got, files = extract(io.BytesIO(blob))
    assert isinstance(got, _archive.ArchiveError) and files == {}


def seal(plain):
    key = _crypto.derive_key(PASSWORD, SALT)
    return SALT + NONCE + _crypto.AESGCM(key).encrypt(NONCE, plain, None)


@fuzz_settings(150)
@given(st.sampled_from(['gzip', 'tar']), flips, cuts, st.binary(max_size=64))
def test_stage_backup_behind_a_valid_tag(memoised_kdf, valid, layer, flip, cut, insert):
    """Decrypted-then-mutated backups, sealed again with the right password: the module's own path."""
    if layer == 'gzip':
        payload = mutate(valid['tgz'], flip, cut, insert)
    else:
        payload = gzip.compress(mutate(valid['tar'], flip, cut, insert))
    parent = tempfile.mkdtemp(prefix='fuzz-stage-')
    try:
        src = os.path.join(parent, 'backup.enc')
        with open(src, 'wb') as fh:
            fh.write(seal(payload))
        staging = os.path.join(parent, 'staging')
        os.mkdir(staging, 0o700)
        try:
            staged = _verify.stage_backup(src, PASSWORD, staging, key_password=KEY_PASSWORD)
        except _verify.BackupInvalid as exc:
            assert str(exc)
        else:
            # Tar carries no checksum of its content, so a tar mutation behind a valid tag may pass
            # (the tag is what authenticates the backup); it must still be a sound, unlocking backup.
            assert staged.integrity == 'ok' and isinstance(staged.secrets, int) and staged.keyring_verified
            for name in staged.key_names():
                with open(os.path.join(staged.keys_dir, name), 'rb') as fh:
                    assert binascii.unhexlify(fh.read().strip()) == \
                        binascii.unhexlify(valid['files']['data/keys/' + name].strip())
            if layer == 'gzip':  # gzip's CRC protects every byte
                with open(staged.db_path, 'rb') as fh:
                    assert fh.read() == valid['files']['nexus.db']
        assert set(tree(parent)) <= {'backup.enc', 'staging'} | set('staging/' + p for p in tree(staging))
    finally:
        shutil.rmtree(parent)


MUTANTS = {
    'gzip-flipped': lambda v: seal(mutate(v['tgz'], [(len(v['tgz']) // 2, 0x10)], None, b'')),
    'gzip-truncated': lambda v: seal(v['tgz'][:len(v['tgz']) // 3]),
    'tar-flipped-header': lambda v: seal(gzip.compress(mutate(v['tar'], [(130, 0x7)], None, b''))),
    'tar-truncated': lambda v: seal(gzip.compress(v['tar'][:700])),
    'db-garbage': lambda v: seal(gzip.compress(mutate(v['tar'], [(512 + 100 + i, 0xff) for i in range(64)],
                                                      None, b''))),
    'random-payload': lambda v: seal(os.urandom(5000)),
}


@pytest.mark.slow
def test_modules_report_mutated_archives_cleanly(valid, ansible_playbook, tmp_path):
    backups = tmp_path / 'backups'
    files = write_backups(backups, MUTANTS, valid)
    data = make_data_dir(tmp_path / 'data', live=2)
    good = make_backup(tmp_path / 'good.enc', PASSWORD, valid['data'])
    before = snapshot_beside_restore_state(tmp_path)
    res = restore_each_then_list(ansible_playbook, data, backups, files + [str(good)], PASSWORD)
    restores = res.task('restore')['results']
    assert len(restores) == len(files) + 1
    for result in restores[:-1]:
        assert result['failed'] is True and 'nothing was changed' in result['msg'], result
        assert 'Traceback' not in json.dumps(result) and 'module_stderr' not in result
    assert restores[-1].get('failed') is not True and restores[-1]['changed'] is True, restores[-1]
    info = res.task('info')
    assert [b['valid'] for b in info['backups']] == [False] * len(files), info
    assert PASSWORD not in res.stdout + res.stderr
    after = snapshot_beside_restore_state(tmp_path)
    # Only the good restore changed the data dir (and kept a pre-restore copy); nothing else moved.
    assert {k: v for k, v in after.items() if not k.startswith('data')} == \
        {k: v for k, v in before.items() if not k.startswith('data')}
    assert leftovers(data) == []
