"""The garbage collector tuned for a long-running service process.

A GET /query of 10,000 rows or a 1,000-row batch allocates tens of thousands of objects. With
CPython's default thresholds these promote a steady stream of survivors into the oldest generation,
and every few requests a full collection walks the whole heap, imports and driver metadata included:
10-70 ms paused under the GIL, the tail of the query latency (measured in bench/PROFILE.md).

Here the objects alive at start-up (modules, the app, settings) are frozen out of every collection,
and the oldest generation is collected after 1,000 middle-generation passes instead of 10. Young
cycles are still collected as often as before; only garbage that outlived two collections waits longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 700  # CPython's default
MIDDLE_THRESHOLD = 10  # CPython's default
OLDEST_THRESHOLD = 1000  # CPython's default is 10


def tune_for_service() -> None:
    """Call once the process has built its long-lived objects, before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLDEST_THRESHOLD)
