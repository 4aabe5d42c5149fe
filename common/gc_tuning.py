"""The garbage collector tuned for the API and worker processes.

In the API, full collections set the GET /query tail; in a worker they were ~8 % of its busy main
thread (py-spy --native: gc_collect_main under the driver's make_query_plan and encode_block),
walking the driver's metadata and the imports on every oldest-generation pass.

A GET /query of 10,000 rows allocates tens of thousands of objects. With CPython's default
thresholds these promote a steady stream of survivors into the oldest generation, and every few
queries a full collection walked the whole heap (imports, the app, driver metadata): 10-70 ms under
the GIL, the tail of the query latency (bench/PROFILE.md).

Here the objects alive once the app is built are frozen out of every collection, and the oldest
generation is collected after 100 middle-generation passes instead of 10. Young cycles are
collected as often as before; only garbage that outlived two collections waits longer. That is
why the store empties each page it has handed out (RangeRead): the driver's futures sit in
cycles, and must not keep whole pages of lines alive until the next full collection.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 700  # CPython's default
MIDDLE_THRESHOLD = 10  # CPython's default
OLDEST_THRESHOLD = 100  # CPython's default is 10


def tune_for_service() -> None:
    """Call once the process has built its long-lived objects, before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLDEST_THRESHOLD)
