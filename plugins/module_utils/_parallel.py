# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one function over many items on a few threads (parallel keep-alive REST calls), and repeat the
items that ask for it in later passes.

Private to this collection; not a public API.
"""

from __future__ import annotations

import threading


def map_parallel(func, items, workers):
    """``[func(item) for item in items]`` on up to ``workers`` threads, results in input order.

    ``func`` should turn expected failures into results; an exception it raises stops the run: no
    thread starts another call, and the first exception is raised here once the running calls end.
    The threads take the next item from one shared iterator (no future or queue per item).
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    results = [None] * len(items)
    source = enumerate(items)  # next() on it is atomic under the GIL
    failure = []

    def work():
        try:
            for index, item in source:
                if failure:
                    return
                results[index] = func(item)
        except BaseException as exc:  # pylint: disable=broad-except
            failure.append(exc)

    threads = [threading.Thread(target=work, name='nexus-worker-%d' % number, daemon=True)
               for number in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failure:
        raise failure[0]
    return results


def in_passes(func, items, workers, passes, pause):
    """Call ``func(item)`` for every item in parallel; the items for which it returns True are
    handed to the next pass, up to ``passes`` passes in all, with ``pause(n)`` before pass ``n + 1``
    (one pause per pass, not per item). Returns the items still asking for a repeat."""
    pending = list(items)
    for number in range(passes):
        if number:
            pause(number - 1)
        repeats = map_parallel(func, pending, workers)
        pending = [item for item, repeat in zip(pending, repeats) if repeat]
        if not pending:
            break
    return pending
