"""The parallel store-or-deflate gzip writer: ordinary gzip for every reader, blocks decided one by one."""

from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import zlib

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _gzip_stream
from ansible_collections.nexus.secrets.plugins.module_utils._gzip_stream import BLOCK_SIZE, GzipWriter

KIB = 1024
MIB = 1024 * KIB
TEXT = b'path=app/secret metadata={"owner": "team"} '
FINAL = _gzip_stream.FINAL_EMPTY_BLOCK


def mixed(size, stripe=128 * KIB):
    """Random and repetitive stripes interleaved, as in a database of blobs and audit rows."""
    parts, total, i = [], 0, 0
    while total < size:
        piece = os.urandom(stripe) if i % 2 == 0 else (TEXT * (stripe // len(TEXT) + 1))[:stripe]
        parts.append(piece)
        total += len(piece)
        i += 1
    return b''.join(parts)[:size]


def gzipped(data, workers, piece=100000):
    out = io.BytesIO()
    writer = GzipWriter(out, workers=workers)
    for i in range(0, len(data), piece):
        writer.write(data[i:i + piece])
    writer.close()
    return out.getvalue()


def raw_blocks(blob):
    """The deflate block types in a stream, by decompressing block by block with a raw inflater."""
    kinds = []
    inflater = zlib.decompressobj(-15)
    data = blob[10:-8]
    pos = 0
    while pos < len(data) and not inflater.eof:
        header = data[pos]
        kinds.append((header >> 1) & 3)
        # Stored blocks carry their length; compressed ones are skipped by feeding bytes until
        # the inflater has consumed one sync-flush marker.
        if (header >> 1) & 3 == 0:
            length = int.from_bytes(data[pos + 1:pos + 3], 'little')
            inflater.decompress(data[pos:pos + 5 + length])
            pos += 5 + length
        else:
            end = data.find(b'\x00\x00\xff\xff', pos)
            end = len(data) if end < 0 else end + 4
            inflater.decompress(data[pos:end])
            pos = end
    return kinds


@pytest.mark.parametrize('codec', ['default', 'stdlib'])
@pytest.mark.parametrize('workers', [1, 2, 4])
def test_every_reader_gets_the_same_bytes(codec, workers, monkeypatch):
    if codec == 'stdlib':
        monkeypatch.setattr(_gzip_stream, 'ZLIB', zlib)
    data = mixed(5 * MIB + 12345)
    blob = gzipped(data, workers)
    assert blob[:10] == b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'
    assert gzip.decompress(blob) == data
    assert zlib.decompress(blob, 31) == data
    gunzip = subprocess.run(['gzip', '-dc'], input=blob, capture_output=True, check=True)
    assert gunzip.stdout == data
    assert subprocess.run(['gzip', '-t'], input=blob, capture_output=True, check=False).returncode == 0


def test_output_does_not_depend_on_the_worker_count():
    data = mixed(3 * MIB)
    assert gzipped(data, 1) == gzipped(data, 2) == gzipped(data, 4)


def test_random_blocks_are_stored_and_text_blocks_deflated():
    """Decided per 64 KiB block: 128 KiB stripes give two stored blocks, then two deflated ones."""
    data = mixed(2 * MIB)
    blob = gzipped(data, 2)
    random_bytes = sum(len(data[i:i + 128 * KIB]) for i in range(0, len(data), 256 * KIB))
    # Random stripes cost only the stored framing; the text stripes shrink to almost nothing.
    assert random_bytes < len(blob) < random_bytes + 64 * KIB
    stored = raw_blocks(blob).count(0)
    assert stored >= random_bytes // BLOCK_SIZE


@pytest.mark.parametrize('workers', [1, 2])
def test_store_level_stores_every_block_even_text(workers):
    """compression: store - the deflate stream is stored blocks only, framed as gzip reads them."""
    data = mixed(3 * MIB + 777)
    out = io.BytesIO()
    writer = GzipWriter(out, level=_gzip_stream.STORE_LEVEL, workers=workers)
    writer.write(data)
    writer.close()
    blob = out.getvalue()
    kinds = raw_blocks(blob)
    assert set(kinds[:-1]) == {0} and kinds[-1] == 1  # then the final empty block every stream ends with
    # Stored framing only: 5 bytes per stored block (at most 65535 bytes each), header and trailer.
    tasks = -(-len(data) // _gzip_stream.TASK_SIZE)
    framing = 5 * (len(data) // 65535 + tasks) + len(_gzip_stream.HEADER) + len(FINAL) + 8
    assert len(data) < len(blob) <= len(data) + framing
    assert gzip.decompress(blob) == data
    assert subprocess.run(['gzip', '-dc'], input=blob, capture_output=True, check=True).stdout == data


@pytest.mark.parametrize('codec', ['default', 'stdlib'])
def test_history_reaches_across_blocks_and_tasks(codec, monkeypatch):
    """Each block may copy from the 32 KiB before it, even across a worker task boundary.

    Text that repeats with a 20 KiB period: a block that sees the period before it compresses
    better than one that starts cold, and the whole stream (three tasks) still reads back.
    """
    if codec == 'stdlib':
        monkeypatch.setattr(_gzip_stream, 'ZLIB', zlib)
    rng = random.Random(7)
    words = [bytes(rng.choice(b'abcdefghij') for dummy in range(6)) for dummy in range(400)]
    period = b' '.join(rng.choice(words) for dummy in range(3000))[:20 * KIB]
    data = period * (3 * MIB // len(period))
    block = data[BLOCK_SIZE:2 * BLOCK_SIZE]
    history = data[BLOCK_SIZE - _gzip_stream.WINDOW:BLOCK_SIZE]
    warm = _gzip_stream.deflate_blocks(block, history)
    cold = _gzip_stream.deflate_blocks(block, b'')
    assert len(warm) < len(cold) * 0.8
    assert zlib.decompressobj(-15, zdict=history).decompress(warm) == block
    assert gzip.decompress(gzipped(data, 2)) == data


@pytest.mark.parametrize('data', [b'', b'x', os.urandom(BLOCK_SIZE), os.urandom(BLOCK_SIZE + 1)])
def test_empty_tiny_and_boundary_sizes(data):
    assert gzip.decompress(gzipped(data, 2)) == data


def test_abort_stops_the_workers():
    out = io.BytesIO()
    writer = GzipWriter(out, workers=2)
    writer.write(mixed(8 * MIB))
    writer.abort()
    assert writer._pool._shutdown  # pylint: disable=protected-access


@pytest.mark.parametrize('codec', ['default', 'stdlib'])
def test_a_block_stored_after_all_may_still_be_referred_to(codec, monkeypatch):
    """A block the run's compressor could not shrink is written stored, and the compressor goes on:
    the next block may copy from it, because readers have those bytes in their window too."""
    if codec == 'stdlib':
        monkeypatch.setattr(_gzip_stream, 'ZLIB', zlib)
    # Every probe passes, so random blocks reach the compressor and must fall back to stored.
    monkeypatch.setattr(_gzip_stream, '_worth_deflating', lambda prober, block: True)
    text = (TEXT * (BLOCK_SIZE // len(TEXT) + 1))[:BLOCK_SIZE]
    noise = os.urandom(BLOCK_SIZE)
    third = noise[-20000:] + text[:BLOCK_SIZE - 20000]
    data = text + noise + third
    raw = _gzip_stream.deflate_blocks(data, b'')
    assert zlib.decompressobj(-15).decompress(raw) == data
    assert raw_blocks(b'\0' * 10 + raw + FINAL + b'\0' * 8).count(0) >= 1  # the noise went out stored
    if codec == 'stdlib':  # (isal's level 1 looks back less far; what it writes still reads back)
        # ... and the third block copied its 20,000 random bytes from it instead of repeating them.
        assert len(noise) < len(raw) < len(noise) + 4 * KIB
    blob = gzipped(data * 3, 2)
    assert gzip.decompress(blob) == data * 3
    assert subprocess.run(['gzip', '-t'], input=blob, capture_output=True, check=False).returncode == 0


def test_write_from_reads_a_file_straight_into_tasks(tmp_path):
    data = mixed(3 * MIB + 777)
    source = tmp_path / 'source'
    source.write_bytes(data)
    out = io.BytesIO()
    writer = GzipWriter(out, workers=2)
    writer.write(b'head')
    with open(str(source), 'rb') as src:
        assert writer.write_from(src, 2 * MIB) == 2 * MIB
        assert writer.write_from(src, 2 * MIB) == MIB + 777  # the file ends first
    writer.close()
    assert gzip.decompress(out.getvalue()) == b'head' + data
