# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take the disk reads and writes of a streaming pass off the calling thread.

A backup or restore reads, (de)compresses and (de)crypts in the caller's thread; writing a GiB
into the page cache costs about as much again, so it runs in a worker thread (both cores of a
small host busy), and a flusher thread pushes the file to disk as it grows, so the final fsync
finds little left to do. A restore's source is read ahead in a thread of its own, so that the
caller's decompression never waits for the disk. Private to this collection.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading

FLUSH_EVERY = 64 * 1024 * 1024
QUEUE_DEPTH = 4  # chunks waiting for the worker: bounded memory


class _BackgroundFlush(object):
    """fdatasyncs a file every ``FLUSH_EVERY`` written bytes, from its own thread.

    Without it the kernel keeps the whole file in the page cache and the final fsync waits for
    all of it (about 3 s per GiB on a 330 MB/s disk); with it, disk writes overlap the CPU work.
    """

    def __init__(self, fd, drop_cache=False):
        self._fd = fd
        self._drop_cache = drop_cache and hasattr(os, 'posix_fadvise')
        self._unflushed = 0
        self._pending = False
        self._wake = threading.Event()
        self._stop = False
        self._error = None
        self._thread = threading.Thread(target=self._run, name='nexus-flush')
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        sync = getattr(os, 'fdatasync', os.fsync)
        while True:
            self._wake.wait()
            self._wake.clear()
            # A flush asked for just before close() still runs, so its error is never lost.
            if self._pending:
                self._pending = False
                try:
                    sync(self._fd)
                except OSError as exc:  # reported by close()
                    self._error = exc
                    return
                if self._drop_cache:
                    self._drop_synced_pages()
            if self._stop:
                return

    def _drop_synced_pages(self):
        """What is on disk now leaves the page cache (a hint: its failure changes nothing)."""
        try:
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass

    def wrote(self, size):
        self._unflushed += size
        if self._unflushed >= FLUSH_EVERY:
            self._unflushed = 0
            self._pending = True
            self._wake.set()

    def close(self):
        self._stop = True
        self._wake.set()
        self._thread.join()
        if self._error is not None:
            raise self._error


class _WorkerWrites(object):
    """File-like: ``write()`` queues a chunk; a worker thread writes it into ``fh`` and feeds ``observe``.

    An error in the worker surfaces at the next ``write()`` or at ``close()``.
    """

    def __init__(self, fh, flusher, observe):
        self._fh = fh
        self._flusher = flusher
        self._observe = observe
        self._queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self._error = None
        self.size = 0
        self._thread = threading.Thread(target=self._run, name='nexus-writer')
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._fh.write(chunk)
                    if self._observe is not None:
                        self._observe(chunk)
                    self._flusher.wrote(len(chunk))
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def write(self, data):
        if self._error is not None:
            raise self._error
        self._queue.put(bytes(data))
        self.size += len(data)
        return len(data)

    def close(self):
        """Wait until everything is written; re-raise the worker's error, if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


@contextlib.contextmanager
def threaded_writes(fh, observe=None, drop_cache=False):
    """Yield a file-like whose writes go to the open binary file ``fh`` from a worker thread.

    ``observe(chunk)`` runs in the worker after each chunk is written (a running hash);
    ``drop_cache`` drops what is on disk from the page cache (a file nobody reads back soon, so
    that writing it does not evict the server's cache). On leaving,
    every chunk has been handed to ``fh`` and both threads are gone (also on errors, so the caller
    may remove the file); the worker's or the flusher's error, if any, is raised. The caller still
    flushes and fsyncs ``fh``.
    """
    flusher = _BackgroundFlush(fh.fileno(), drop_cache)
    try:
        writer = _WorkerWrites(fh, flusher, observe)
        try:
            yield writer
        finally:
            writer.close()
    finally:
        flusher.close()


class _ReadAhead(object):
    """File-like: a worker thread reads ``fh`` ahead, chunk by chunk, into a bounded queue.

    ``read()`` returns the data in order, and raises the worker's error where it happened.
    ``observe`` (optional) is called by the worker with each chunk it read, in order.
    """

    def __init__(self, fh, chunk_size, observe=None):
        self._fh = fh
        self._chunk_size = chunk_size
        self._observe = observe
        self._queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stop = threading.Event()
        self._left = b''  # what a smaller read() left of the current chunk
        self._done = False
        self._thread = threading.Thread(target=self._run, name='nexus-reader')
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                piece = self._fh.read(self._chunk_size)
                if piece and self._observe is not None:
                    self._observe(piece)
            except BaseException as exc:  # handed to the caller's thread
                piece = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(piece, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(piece, bytes) or not piece:
                return

    def read(self, size=-1):
        if size is None or size < 0:
            return b''.join(iter(lambda: self.read(self._chunk_size), b''))
        if not self._left and not self._done:
            piece = self._queue.get()
            if isinstance(piece, BaseException):
                self._done = True
                raise piece
            self._done = not piece
            self._left = piece
        out, self._left = self._left[:size], self._left[size:]
        return out

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


@contextlib.contextmanager
def read_ahead(fh, chunk_size=1024 * 1024, observe=None):
    """Yield a file-like that reads the open binary file ``fh`` from a worker thread, ahead of use.

    ``observe``, when given, sees every chunk read, on the worker thread (a hash of the whole file
    costs no second read).

    At most ``QUEUE_DEPTH`` chunks are held. On leaving, the worker is stopped and gone, wherever
    the caller stopped reading.
    """
    reader = _ReadAhead(fh, chunk_size, observe)
    try:
        yield reader
    finally:
        reader.close()
