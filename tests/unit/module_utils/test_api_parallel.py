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
