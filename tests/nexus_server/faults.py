"""Fault injection for reliability tests: 500/503 answers, latency, dropped connections.

Off by default. Flags ``-fault-error-rate``, ``-fault-latency-ms``, ``-fault-drop-rate``,
``-fault-seed`` or environment ``NEXUS_FAULT_ERROR_RATE``, ``NEXUS_FAULT_LATENCY_MS``,
``NEXUS_FAULT_DROP_RATE``, ``NEXUS_FAULT_SEED`` (flags win). ``/health`` is never affected.
``-fault-unhealthy`` / ``NEXUS_FAULT_UNHEALTHY=1`` makes ``/health`` answer 503 instead.
``-fault-limit N`` / ``NEXUS_FAULT_LIMIT``: at most N errors and drops in all, then none (a transient
outage); latency is not limited.

The server's own record: with ``-fault-log PATH`` / ``NEXUS_FAULT_LOG``, every injected fault is appended
to PATH as one JSON line, written when it takes effect: ``{"fault": "latency", "ms": 400.0, "method": "GET",
"path": "/api/v1/secrets"}`` after the delay was slept, ``{"fault": "error", "status": 503, ...}``,
``{"fault": "drop", ...}``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Optional

ENV = {
    'error_rate': 'NEXUS_FAULT_ERROR_RATE',
    'latency_ms': 'NEXUS_FAULT_LATENCY_MS',
    'drop_rate': 'NEXUS_FAULT_DROP_RATE',
    'seed': 'NEXUS_FAULT_SEED',
    'unhealthy': 'NEXUS_FAULT_UNHEALTHY',
    'limit': 'NEXUS_FAULT_LIMIT',
    'log': 'NEXUS_FAULT_LOG',
}

DROP = 'drop'


@dataclass
class FaultConfig:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    seed: Optional[int] = None
    unhealthy: bool = False
    limit: Optional[int] = None
    log: Optional[str] = None

    @classmethod
    def from_sources(cls, flags, environ):
        """``flags``: dict of values given on the command line (None = not given)."""
        def pick(name, conv):
            value = flags.get(name)
            if value is None and environ.get(ENV[name], '') != '':
                value = environ[ENV[name]]
            return conv(value) if value is not None else None

        def boolean(value):
            return str(value).lower() in ('1', 'true', 'yes', 'on')

        cfg = cls(
            error_rate=pick('error_rate', float) or 0.0,
            latency_ms=pick('latency_ms', float) or 0.0,
            drop_rate=pick('drop_rate', float) or 0.0,
            seed=pick('seed', int),
            unhealthy=bool(pick('unhealthy', boolean)),
            limit=pick('limit', int),
            log=pick('log', str) or None,
        )
        for name in ('error_rate', 'drop_rate'):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise ValueError('%s must be within [0, 1]' % name)
        if cfg.latency_ms < 0:
            raise ValueError('latency_ms must be >= 0')
        if cfg.limit is not None and cfg.limit < 0:
            raise ValueError('limit must be >= 0')
        return cfg

    @property
    def active(self):
        return bool(self.error_rate or self.latency_ms or self.drop_rate)

    def describe(self):
        return 'error_rate=%s latency_ms=%s drop_rate=%s seed=%s limit=%s' % (
            self.error_rate, self.latency_ms, self.drop_rate, self.seed, self.limit)


class FaultInjector:
    def __init__(self, config):
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._injected = 0  # errors and drops so far (``limit``)

    def _record(self, fault, method, path, **detail):
        if not self.config.log:
            return
        entry = dict(fault=fault, method=method, path=path, **detail)
        line = json.dumps(entry, sort_keys=True) + '\n'
        with self._lock, open(self.config.log, 'a', encoding='utf-8') as fh:
            fh.write(line)

    def decide(self, method='', path=''):
        """Sleep the configured latency, then return None, ``DROP``, 500 or 503 (and record it)."""
        cfg = self.config
        if not cfg.active:
            return None
        if cfg.latency_ms:
            time.sleep(cfg.latency_ms / 1000.0)
            self._record('latency', method, path, ms=cfg.latency_ms)
        with self._lock:
            drop_roll = self._rng.random()
            error_roll = self._rng.random()
            status_roll = self._rng.random()
            decision = None
            if drop_roll < cfg.drop_rate:
                decision = DROP
            elif error_roll < cfg.error_rate:
                decision = 500 if status_roll < 0.5 else 503
            if decision is not None:
                if cfg.limit is not None and self._injected >= cfg.limit:
                    decision = None
                else:
                    self._injected += 1
        if decision == DROP:
            self._record('drop', method, path)
        elif decision is not None:
            self._record('error', method, path, status=decision)
        return decision
