"""Profiling of the running API over HTTP (only when ENABLE_PROFILING is on).

- GET /debug/pprof/profile?seconds=N : samples every thread's stack N seconds (default 10) and
  returns them in the "collapsed stacks" format read by flamegraph.pl and speedscope;
- GET /debug/pprof/heap : the largest live allocations by source line (tracemalloc, started with the
  app, so it sees everything allocated since).
"""

from __future__ import annotations

import collections
import sys
import threading
import time
import tracemalloc

import falcon

MAX_PROFILE_SECONDS = 60
SAMPLE_INTERVAL_SECONDS = 0.005


def start_heap_tracing() -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(16)


def _positive_param(req: falcon.Request, name: str, default: float, maximum: float) -> float:
    raw = req.get_param(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not 0 < value <= maximum:
        raise falcon.HTTPBadRequest(title=f"Invalid parameter '{name}'",
                                    description=f"expected a number in (0, {maximum}]")
    return value


def sample_stacks(seconds: float, interval: float = SAMPLE_INTERVAL_SECONDS) -> collections.Counter:
    """Collapsed stacks ("a;b;c") of every other thread, counted over `seconds` of sampling."""
    me = threading.get_ident()
    counts: collections.Counter = collections.Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for thread_id, frame in sys._current_frames().items():
            if thread_id == me:
                continue
            stack = []
            while frame is not None:
                code = frame.f_code
                stack.append(f"{code.co_name} ({code.co_filename}:{frame.f_lineno})")
                frame = frame.f_back
            counts[";".join(reversed(stack))] += 1
        time.sleep(interval)
    return counts


class CpuProfileResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        seconds = _positive_param(req, "seconds", 10, MAX_PROFILE_SECONDS)
        counts = sample_stacks(seconds)
        resp.text = "".join(f"{stack} {n}\n" for stack, n in counts.most_common())
        resp.content_type = falcon.MEDIA_TEXT


class HeapProfileResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = int(_positive_param(req, "top", 50, 1000))
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics("lineno")
        total = sum(s.size for s in stats)
        lines = [f"# traced live memory: {total} bytes in {len(stats)} source lines; top {limit}"]
        lines += [f"{s.size} bytes  {s.count} blocks  {s.traceback}" for s in stats[:limit]]
        resp.text = "\n".join(lines) + "\n"
        resp.content_type = falcon.MEDIA_TEXT
