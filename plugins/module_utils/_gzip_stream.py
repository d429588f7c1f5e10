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
HEADER = b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'  # deflate, no name, no mtime, OS unknown
FINAL_EMPTY_BLOCK = b'\x03\x00'  # a final, empty fixed-Huffman block ends the deflate stream

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
    if history:
        return codec.compressobj(level, codec.DEFLATED, -15, zdict=history)
    return codec.compressobj(level, codec.DEFLATED, -15)


def _worth_deflating(codec, level, block):
    probe = block[:PROBE_SIZE]
    comp = codec.compressobj(level, codec.DEFLATED, -15)
    return len(comp.compress(probe)) + len(comp.flush()) <= len(probe) * MIN_SAVING


def deflate_blocks(data, history, level=COMPRESS_LEVEL, codec=None):
    """Raw deflate of ``data`` as independent, byte-aligned, non-final blocks.

    ``history`` is the (up to 32 KiB) uncompressed data that precedes ``data`` in the stream: a
    reader has it in its window, so blocks may refer back into it whether it was stored or not.
    """
    codec = codec or ZLIB
    view = memoryview(data)
    parts = []
    for start in range(0, len(data), BLOCK_SIZE):
        block = view[start:start + BLOCK_SIZE]
        if _worth_deflating(codec, level, block):
            before = bytes(view[max(0, start - WINDOW):start]) if start else history
            comp = _compressor(codec, level, before)
            # A sync flush ends on a byte boundary, so the next block can start fresh.
            out = comp.compress(block) + comp.flush(codec.Z_SYNC_FLUSH)
            if len(out) < len(block):
                parts.append(out)
                continue
        parts.append(_stored(block))
    return b''.join(parts)


class GzipWriter(object):
    """File-like gzip compressor writing into another file-like object, on ``workers`` threads.

    Memory stays bounded: at most two tasks per worker are in flight, and results are written in
    order as they complete.
    """

    def __init__(self, out, level=COMPRESS_LEVEL, workers=None):
        self._out = out
        self._level = level
        self._codec = ZLIB
        self._pending = []
        self._pending_len = 0
        self._history = b''
        self._crc = 0
        self._size = 0
        self._workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._workers) if self._workers > 1 else None
        self._inflight = collections.deque()
        self._out.write(HEADER)

    def write(self, data):
        self._pending.append(bytes(data))
        self._pending_len += len(data)
        if self._pending_len >= TASK_SIZE:
            # Whole tasks only, so that blocks start at multiples of BLOCK_SIZE in the stream.
            joined = b''.join(self._pending)
            cut = len(joined) - len(joined) % TASK_SIZE
            for start in range(0, cut, TASK_SIZE):
                self._submit(joined[start:start + TASK_SIZE])
            rest = joined[cut:]
            self._pending, self._pending_len = ([rest] if rest else []), len(rest)
        return len(data)

    def _submit(self, chunk):
        self._crc = self._codec.crc32(chunk, self._crc)
        self._size += len(chunk)
        history, self._history = self._history, (self._history + chunk)[-WINDOW:]
        if self._pool is None:
            self._out.write(deflate_blocks(chunk, history, self._level, self._codec))
            return
        self._inflight.append(self._pool.submit(deflate_blocks, chunk, history, self._level, self._codec))
        while len(self._inflight) > 2 * self._workers:
            self._out.write(self._inflight.popleft().result())

    def abort(self):
        """Stop after a failure elsewhere: queued work is dropped, nothing more is written."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def close(self):
        try:
            if self._pending:
                self._submit(b''.join(self._pending))
                self._pending = []
            while self._inflight:
                self._out.write(self._inflight.popleft().result())
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        self._out.write(FINAL_EMPTY_BLOCK)
        self._out.write(struct.pack('<II', self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
