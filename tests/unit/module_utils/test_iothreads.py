"""Reads ahead in a thread: the same bytes in the same order, errors where they happened, no thread left."""

from __future__ import annotations

import io
import os
import threading

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._iothreads import read_ahead


def reader_threads():
    return [t for t in threading.enumerate() if t.name == 'nexus-reader']


@pytest.mark.parametrize('sizes', [[28, 1000, 7, 65536], [1], [300000]])
def test_reads_return_the_file_in_order(sizes):
    data = os.urandom(1000003)
    out = []
    with read_ahead(io.BytesIO(data), chunk_size=65536) as ahead:
        i = 0
        while True:
            piece = ahead.read(sizes[i % len(sizes)])
            i += 1
            if not piece:
                break
            assert len(piece) <= sizes[(i - 1) % len(sizes)]
            out.append(piece)
        assert ahead.read(10) == b''
    assert b''.join(out) == data
    assert not reader_threads()


def test_read_all():
    data = os.urandom(200000)
    with read_ahead(io.BytesIO(data), chunk_size=4096) as ahead:
        assert ahead.read(5) == data[:5]
        assert ahead.read() == data[5:]


class FailsAfter(io.RawIOBase):
    def __init__(self, good):
        super().__init__()
        self.good = good

    def readable(self):
        return True

    def read(self, size=-1):
        if self.good <= 0:
            raise OSError(5, 'Input/output error')
        take = min(size, self.good)
        self.good -= take
        return b'x' * take


def test_an_error_surfaces_after_the_data_before_it():
    with read_ahead(FailsAfter(10000), chunk_size=4096) as ahead:
        got = b''
        with pytest.raises(OSError, match='Input/output error'):
            while True:
                got += ahead.read(4096)
        assert got == b'x' * 10000
    assert not reader_threads()


def test_leaving_early_stops_the_worker():
    """The caller gives up after one chunk of a long file: the worker, blocked on a full queue, ends."""
    with read_ahead(io.BytesIO(b'y' * (64 * 1024 * 1024)), chunk_size=4096) as ahead:
        assert ahead.read(100) == b'y' * 100
    assert not reader_threads()


def test_observe_sees_every_chunk_in_order_and_its_error_surfaces():
    data = os.urandom(300001)
    seen = []
    with read_ahead(io.BytesIO(data), chunk_size=65536, observe=seen.append) as ahead:
        assert ahead.read() == data
    assert b''.join(seen) == data and all(seen)  # no empty chunk at the end

    def refuse(chunk):
        raise ValueError('observer failed')
    with read_ahead(io.BytesIO(data), chunk_size=65536, observe=refuse) as ahead:
        with pytest.raises(ValueError, match='observer failed'):
            ahead.read()
    assert not reader_threads()
