"""Fuzz the envelope reader (``decrypt_bytes``, ``decrypt_file``, streaming ``EnvelopeReader``).

Random, truncated, extended and bit-flipped envelopes, odd passwords, odd read sizes. AES-GCM
makes the oracle exact: the untouched envelope with the right password decrypts to its plaintext;
every other input raises ``EnvelopeError`` with a message - never another exception or a hang.
Then the modules show a clean ``msg`` for damaged files.
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto, _envelope
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeError
from tests.integration.restore.backups import leftovers, make_backup, make_data_dir, snapshot_beside_restore_state
from tests.reliability.fuzzing import memoised_kdf  # noqa: F401 (fixture)  # pylint: disable=unused-import
from tests.reliability.fuzzing import fuzz_settings, mutate, restore_each_then_list, tree, write_backups

PASSWORD = 'fuzz-envelope-password'
SALT, NONCE = b'S' * 16, b'N' * 12

flips = st.lists(st.tuples(st.integers(0, 10 ** 7), st.integers(0, 255)), max_size=3)
cuts = st.one_of(st.none(), st.integers(0, 10 ** 7))
plaintexts = st.one_of(st.binary(max_size=2048),
                       st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=64), st.integers(1, 40000)))


def seal(plain, password=PASSWORD):
    """The nexusctl envelope (docs/nexus-behaviour.md §5) with a fixed salt and nonce, built independently of
    ``_envelope`` so the reader is checked against the format, not against its own writer."""
    key = _crypto.derive_key(password, SALT)
    return SALT + NONCE + _crypto.AESGCM(key).encrypt(NONCE, plain, None)


def outcome_bytes(blob, password=PASSWORD):
    try:
        return _envelope.decrypt_bytes(password, blob)
    except EnvelopeError as exc:
        assert str(exc)
        return exc


def outcome_stream(blob, read_sizes, password=PASSWORD):
    """Read through ``EnvelopeReader`` with the given read sizes (cycled) until the end."""
    try:
        reader = _envelope.EnvelopeReader(io.BytesIO(blob), password)
        parts, i = [], 0
        while True:
            piece = reader.read(read_sizes[i % len(read_sizes)] if read_sizes else -1)
            i += 1
            if not piece:
                return b''.join(parts)
            parts.append(piece)
    except EnvelopeError as exc:
        assert str(exc)
        return exc


@fuzz_settings(120)  # a flipped salt costs a real KDF: 300 examples took over 30 s
@given(plaintexts, flips, cuts, st.binary(max_size=40))
def test_decrypt_bytes_accepts_only_the_untouched_envelope(memoised_kdf, plain, flip, cut, insert):
    blob = seal(plain)
    damaged = mutate(blob, flip, cut, insert)
    got = outcome_bytes(damaged)
    if damaged == blob:
        assert got == plain
    else:
        assert isinstance(got, EnvelopeError), 'a damaged envelope decrypted'


@fuzz_settings(200)
@given(plaintexts, flips, cuts, st.lists(st.one_of(st.integers(1, 70000), st.just(-1)), max_size=4))
def test_streaming_reader_agrees_and_never_returns_unverified_success(memoised_kdf, plain, flip, cut, sizes):
    blob = seal(plain)
    damaged = mutate(blob, flip, cut, b'')
    got = outcome_stream(damaged, sizes)
    if damaged == blob:
        assert got == plain
    else:
        assert isinstance(got, EnvelopeError)
    # decrypt_file: the same answer, and it writes only into the file object it is given.
    with tempfile.TemporaryDirectory() as parent:
        src = os.path.join(parent, 'in.enc')
        with open(src, 'wb') as fh:
            fh.write(damaged)
        out = io.BytesIO()
        try:
            size = _envelope.decrypt_file(src, PASSWORD, out)
            assert damaged == blob and size == len(plain) and out.getvalue() == plain
        except EnvelopeError as exc:
            assert damaged != blob and str(exc)
        assert set(tree(parent)) == {'in.enc'}


@fuzz_settings(150)
@given(st.binary(max_size=200))
def test_random_bytes_behind_a_known_salt(memoised_kdf, tail):
    assert isinstance(outcome_bytes(SALT + tail), EnvelopeError)
    assert isinstance(outcome_stream(SALT + tail, [7]), EnvelopeError)


@fuzz_settings(40)
@given(st.binary(max_size=64), st.text(max_size=12))
def test_random_bytes_and_passwords(blob, password):
    """Fresh salts and passwords: the real KDF runs each time, so fewer examples."""
    for got in (outcome_bytes(blob, password), outcome_stream(blob, [], password)):
        assert isinstance(got, EnvelopeError)
        if not password:
            assert 'must not be empty' in str(got)


def test_writer_and_reader_round_trip_a_real_envelope():
    plain = os.urandom(3 * _envelope.CHUNK_SIZE + 5)
    out = io.BytesIO()
    with _envelope.EnvelopeWriter(out, PASSWORD) as writer:
        for start in range(0, len(plain), 777777):
            writer.write(plain[start:start + 777777])
    assert _envelope.decrypt_bytes(PASSWORD, out.getvalue()) == plain
    assert outcome_stream(out.getvalue(), [4096, 1 << 20, 3]) == plain
    assert isinstance(outcome_bytes(out.getvalue(), PASSWORD + 'x'), EnvelopeError)


DAMAGE = {
    'flipped-tag': lambda b: b[:-1] + bytes([b[-1] ^ 1]),
    'flipped-salt': lambda b: bytes([b[0] ^ 0x80]) + b[1:],
    'flipped-middle': lambda b: b[:len(b) // 2] + bytes([b[len(b) // 2] ^ 4]) + b[len(b) // 2 + 1:],
    'truncated-half': lambda b: b[:len(b) // 2],
    'truncated-header': lambda b: b[:20],
    'extended': lambda b: b + b'\0' * 17,
    'empty': lambda b: b'',
}


@pytest.mark.slow
def test_modules_report_damaged_envelopes_cleanly(ansible_playbook, tmp_path):
    data = make_data_dir(tmp_path / 'data', live=3)
    good = make_backup(tmp_path / 'good.enc', PASSWORD, data).read_bytes()
    backups = tmp_path / 'backups'
    files = write_backups(backups, DAMAGE, good)
    before = snapshot_beside_restore_state(tmp_path)
    res = restore_each_then_list(ansible_playbook, data, backups, files, PASSWORD)
    restores = res.task('restore')['results']
    assert len(restores) == len(files)
    for result in restores:
        assert result['failed'] is True and 'nothing was changed' in result['msg'], result
        assert 'Traceback' not in json.dumps(result) and 'module_stderr' not in result
    info = res.task('info')
    assert info.get('failed') is not True, info
    assert sorted(b['valid'] for b in info['backups']) == [False] * len(files)
    assert all(b['error'] for b in info['backups'])
    assert PASSWORD not in res.stdout + res.stderr
    assert snapshot_beside_restore_state(tmp_path) == before and leftovers(data) == []
