"""map_parallel: input order kept, at most ``workers`` at once, an exception stops the rest."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._parallel import map_parallel


def test_results_in_input_order_and_bounded_concurrency():
    lock = threading.Lock()
    state = {'now': 0, 'peak': 0}

    def work(i):
        with lock:
            state['now'] += 1
            state['peak'] = max(state['peak'], state['now'])
        time.sleep(0.01 * (i % 3))
        with lock:
            state['now'] -= 1
        return i * i

    assert map_parallel(work, range(30), 4) == [i * i for i in range(30)]
    assert 1 < state['peak'] <= 4


def test_an_exception_cancels_the_calls_not_started():
    started = []

    def work(i):
        started.append(i)
        if i == 0:
            raise KeyError('stop')
        time.sleep(0.02)
        return i

    with pytest.raises(KeyError):
        map_parallel(work, range(200), 2)
    assert len(started) < 200


def test_one_worker_runs_inline():
    assert map_parallel(lambda i: threading.current_thread().name, [1, 2], 1) == [threading.current_thread().name] * 2


def test_in_passes_repeats_only_what_asks_with_one_pause_per_pass():
    from ansible_collections.nexus.secrets.plugins.module_utils._parallel import in_passes
    calls, pauses = [], []

    def work(i):
        calls.append(i)
        return i % 2 == 1 and calls.count(i) < 3  # odd items ask twice for a repeat

    left = in_passes(work, range(6), 3, 4, pauses.append)
    assert left == [] and pauses == [0, 1]
    assert sorted(calls) == [0, 1, 1, 1, 2, 3, 3, 3, 4, 5, 5, 5]
    calls[:] = []
    assert in_passes(lambda i: True, [7, 8], 2, 2, pauses.append) == [7, 8] and pauses == [0, 1, 0]


def test_require_crypto_fails_the_module_only_when_needed(monkeypatch):
    from ansible_collections.nexus.secrets.plugins.module_utils import _crypto

    class Module(object):
        def fail_json(self, **kwargs):
            raise SystemExit(kwargs)

    monkeypatch.setattr(_crypto, 'missing_dependency', lambda: ('cryptography', 'Traceback: injected'))
    _crypto.require_crypto(Module(), needed=False)
    with pytest.raises(SystemExit) as info:
        _crypto.require_crypto(Module())
    assert 'cryptography' in info.value.args[0]['msg'] and info.value.args[0]['exception'] == 'Traceback: injected'
    monkeypatch.setattr(_crypto, 'missing_dependency', lambda: None)
    _crypto.require_crypto(Module())
