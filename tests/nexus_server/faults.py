"""Fault injection for reliability tests: 500/503 answers, latency, dropped connections.

Off by default. Flags ``-fault-error-rate``, ``-fault-latency-ms``, ``-fault-drop-rate``,
``-fault-seed`` or environment ``NEXUS_FAULT_ERROR_RATE``, ``NEXUS_FAULT_LATENCY_MS``,
``NEXUS_FAULT_DROP_RATE``, ``NEXUS_FAULT_SEED`` (flags win). ``/health`` is never affected.
``-fault-unhealthy`` / ``NEXUS_FAULT_UNHEALTHY=1`` makes ``/health`` answer 503 instead.
"""

from __future__ import annotations

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
}

DROP = 'drop'


@dataclass
class FaultConfig:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    seed: Optional[int] = None
    unhealthy: bool = False

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
        )
        for name in ('error_rate', 'drop_rate'):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise ValueError('%s must be within [0, 1]' % name)
        if cfg.latency_ms < 0:
            raise ValueError('latency_ms must be >= 0')
        return cfg

    @property
    def active(self):
        return bool(self.error_rate or self.latency_ms or self.drop_rate)

    def describe(self):
        return 'error_rate=%s latency_ms=%s drop_rate=%s seed=%s' % (
            self.error_rate, self.latency_ms, self.drop_rate, self.seed)


class FaultInjector:
    def __init__(self, config):
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()

    def decide(self):
        """Sleep the configured latency, then return None, ``DROP``, 500 or 503."""
        cfg = self.config
        if not cfg.active:
            return None
        if cfg.latency_ms:
            time.sleep(cfg.latency_ms / 1000.0)
        with self._lock:
            drop_roll = self._rng.random()
            error_roll = self._rng.random()
            status_roll = self._rng.random()
        if drop_roll < cfg.drop_rate:
            return DROP
        if error_roll < cfg.error_rate:
            return 500 if status_roll < 0.5 else 503
        return None
