"""Audit trail writer: entries are signed (Ed25519 signing key) and stored in batches off the request path."""

from __future__ import annotations

import queue
import threading

_STOP = object()


class AuditSink:
    def __init__(self, storage, signer, batch=500):
        self.storage = storage
        self.signer = signer
        self.batch = batch
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name='audit-writer', daemon=True)
        self._thread.start()

    def put(self, entry):
        self._queue.put(entry)

    def flush(self):
        """Block until every entry put so far is stored."""
        self._queue.join()

    def close(self):
        self._queue.put(_STOP)
        self._thread.join(30)

    def _run(self):
        while True:
            item = self._queue.get()
            items = [item]
            while len(items) < self.batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            entries = [e for e in items if e is not _STOP]
            try:
                for entry in entries:
                    entry.signature = self.signer.sign(entry.signed_payload()).hex()
                if entries:
                    self.storage.add_audits(entries)
            except Exception:  # audit failures never fail requests nor the writer
                pass
            finally:
                for dummy in items:
                    self._queue.task_done()
            if len(entries) != len(items):
                return
