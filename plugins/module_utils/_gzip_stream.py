# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A gzip writer that uses every core and compresses only what compresses, as pigz does.

The output is one ordinary gzip member (Go's header bytes, CRC-32 and size trailer) that any gzip
reader accepts. Its deflate stream is cut into blocks of at most 64 KiB, each of which is either
stored (AES-GCM ciphertext, most of a NEXUS database, never shrinks) or deflated on its own, with the
32 KiB before it as preset dictionary so the ratio stays close to a single stream. Deflating
independent blocks lets threads work in parallel: zlib releases the GIL while it compresses.
A faster zlib-compatible codec (isal) is used when importable; the bytes stay ordinary gzip.
Private to this collection.
"""

from __future__ import annotations

import collections
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

try:
    from isal import isal_zlib as _fast_zlib
except ImportError:
    _fast_zlib = None

# The codec: isal when importable (several times faster at level 1), else the standard library.
ZLIB = _fast_zlib or zlib
COMPRESS_LEVEL = 1          # backups are mostly encrypted blobs: a low level costs nothing in size
STORE_LEVEL = 0             # every block stored: the fastest backup and restore, the largest file
HEADER = b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'  # deflate, no name, no mtime, OS unknown
FINAL_EMPTY_BLOCK = b'\x03\x00'  # a final, empty fixed-Huffman block ends the deflate stream
FULL_FLUSH = zlib.Z_FULL_FLUSH   # the same constant in isal

BLOCK_SIZE = 64 * 1024      # the unit of the store-or-deflate decision
PROBE_SIZE = 4 * 1024       # what is compressed to decide: random data is known after 4 KiB
MIN_SAVING = 0.9            # a block that keeps more than this share of its size is stored
WINDOW = 32 * 1024          # deflate's window: the history a block may refer back to
TASK_SIZE = 1024 * 1024     # bytes handed to a worker at once (16 blocks)


def _stored(block):
    """Deflate stored blocks (not final) for ``block``; a stored block holds at most 65535 bytes."""
    parts = []
    for start in range(0, len(block), 65535):
        piece = block[start:start + 65535]
        parts.append(struct.pack('<BHH', 0, len(piece), len(piece) ^ 0xFFFF))
        parts.append(piece)
    return b''.join(parts)


def _compressor(codec, level, history):
    # memLevel 9: larger hash tables, about 15 % less CPU at level 1 on database pages.
    if history:
        return codec.compressobj(level, codec.DEFLATED, -15, 9, zdict=history)
    return codec.compressobj(level, codec.DEFLATED, -15, 9)


def _worth_deflating(prober, block):
    """Whether the first PROBE_SIZE bytes of ``block`` shrink enough when deflated on their own.

    ``prober`` is one compressor reused for every probe of a task (a new one costs more than
    the probe): a full flush after each probe resets its history, so each probe stands alone.
    """
    probe = block[:PROBE_SIZE]
    return len(prober.compress(probe)) + len(prober.flush(FULL_FLUSH)) <= len(probe) * MIN_SAVING


def deflate_blocks(data, history, level=COMPRESS_LEVEL, codec=None):
    """Raw deflate of ``data`` as byte-aligned, non-final blocks.

    ``history`` is the (up to 32 KiB) uncompressed data that precedes ``data`` in the stream: a
    reader has it in its window, so blocks may refer back into it whether it was stored or not.
    Consecutive deflated blocks share one compressor, so each sees the blocks before it for free.
    A block the compressor could not shrink is written stored instead; the compressor still goes
    on, because after a sync flush its state is only that window, which a reader has either way.
    """
    if level == STORE_LEVEL:
        return _stored(memoryview(data))
    codec = codec or ZLIB
    view = memoryview(data)
    parts = []
    prober = codec.compressobj(level, codec.DEFLATED, -15)
    comp = None  # the compressor of the current run of deflated blocks
    for start in range(0, len(data), BLOCK_SIZE):
        block = view[start:start + BLOCK_SIZE]
        if not _worth_deflating(prober, block):
            parts.append(_stored(block))
            comp = None
            continue
        if comp is None:
            # A run that starts after a stored block gets no preset dictionary: random bytes
            # give nothing to refer to, and priming 32 KiB costs a third of deflating a block.
            comp = _compressor(codec, level, history if start == 0 else b'')
        # A sync flush ends on a byte boundary, so the next block can start fresh.
        out = comp.compress(block) + comp.flush(codec.Z_SYNC_FLUSH)
        parts.append(out if len(out) < len(block) else _stored(block))
    return b''.join(parts)


def _crc_shifter(length):
    """A function that moves a CRC-32 ``length`` bytes further: crc(A + B) = shift(crc(A)) ^ crc(B).

    CRC-32 is affine in its start value, so the shift is linear: it is built once from what
    ``length`` zero bytes do to each of the 32 bits, as four byte-indexed tables (zlib's
    crc32_combine, which Python does not expose). It lets each worker checksum its own task.
    """
    zeros = b'\0' * length
    base = zlib.crc32(zeros, 0)
    columns = [zlib.crc32(zeros, 1 << bit) ^ base for bit in range(32)]
    tables = []
    for byte in range(4):
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value
            table[value] = table[value ^ low] ^ columns[8 * byte + low.bit_length() - 1]
        tables.append(table)
    t0, t1, t2, t3 = tables

    def shift(crc):
        return t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24]
    return shift


def _task(data, history, level, codec):
    return deflate_blocks(data, history, level, codec), codec.crc32(data), len(data)


class GzipWriter(object):
    """File-like gzip compressor writing into another file-like object, on ``workers`` threads.

    Memory stays bounded: at most two tasks per worker are in flight, and results are written in
    order as they complete. Workers also checksum their tasks; the CRCs are combined in order.
    """

    def __init__(self, out, level=COMPRESS_LEVEL, workers=None):
        self._out = out
        self._level = level
        self._codec = ZLIB
        self._task = bytearray(TASK_SIZE)  # the task being filled; handed to a worker when full
        self._filled = 0
        self._history = b''
        self._crc = 0
        self._size = 0
        self._shifters = {}
        self._workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._workers) if self._workers > 1 else None
        self._inflight = collections.deque()
        self._out.write(HEADER)

    def write(self, data):
        view = memoryview(data).cast('B')
        while view:
            take = min(len(view), TASK_SIZE - self._filled)
            self._task[self._filled:self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == TASK_SIZE:
                self._submit()
        return len(data)

    def write_from(self, src, size):
        """Write the next ``size`` bytes of the binary file ``src``, read straight into the task
        buffer (no copy in between); return how many there were (fewer at its end)."""
        done = 0
        while done < size:
            want = min(size - done, TASK_SIZE - self._filled)
            got = src.readinto(memoryview(self._task)[self._filled:self._filled + want])
            if not got:
                break
            self._filled += got
            done += got
            if self._filled == TASK_SIZE:
                self._submit()
        return done

    def _submit(self):
        # Whole tasks only (but the last), so that blocks start at multiples of BLOCK_SIZE.
        chunk = self._task if self._filled == TASK_SIZE else self._task[:self._filled]
        self._task, self._filled = bytearray(TASK_SIZE), 0
        history, self._history = self._history, (self._history + bytes(chunk[-WINDOW:]))[-WINDOW:]
        if self._pool is None:
            self._emit(_task(chunk, history, self._level, self._codec))
            return
        self._inflight.append(self._pool.submit(_task, chunk, history, self._level, self._codec))
        while len(self._inflight) > 2 * self._workers:
            self._emit(self._inflight.popleft().result())

    def _emit(self, result):
        deflated, crc, size = result
        if size not in self._shifters:
            self._shifters[size] = _crc_shifter(size)
        self._crc = self._shifters[size](self._crc) ^ crc
        self._size += size
        self._out.write(deflated)

    def abort(self):
        """Stop after a failure elsewhere: queued work is dropped, nothing more is written."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def close(self):
        try:
            if self._filled:
                self._submit()
            while self._inflight:
                self._emit(self._inflight.popleft().result())
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        self._out.write(FINAL_EMPTY_BLOCK)
        self._out.write(struct.pack('<II', self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
