# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one function over many items on a bounded thread pool (parallel keep-alive REST calls).

Private to this collection; not a public API.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def map_parallel(func, items, workers):
    """``[func(item) for item in items]`` on up to ``workers`` threads, results in input order.

    ``func`` should turn expected failures into results; an exception it raises stops the run:
    the calls not yet started are cancelled and it is raised here once the running ones end.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(func, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()  # calls not started yet never run
            raise
