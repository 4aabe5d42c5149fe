"""Reading stored lines in one global order, across buckets, containers and pods, and cutting the
result into pages that never skip or repeat a line. The engine behind GET /query and GET /tail;
no HTTP here, and no CQL either (the store's read primitives do that).

The order is (ts_ns, pod_name, container_name, line_id): time first, then a fixed tie-break that
every page agrees on, so a page can end between two lines with the same nanosecond and the next
one starts exactly after the first.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from common.log_store import Direction, LogLine, LogStore, Position
from common.query_plan import BucketSlice, plan_slices
from common.schema import LINE_ID_MAX, LINE_ID_MIN

# Buckets whose reads are started ahead of the one being returned: one container, or many.
_READ_AHEAD_ONE_CONTAINER = 16
_READ_AHEAD_MANY_CONTAINERS = 2
# A read started ahead fetches at most this many lines until it is the one being returned (its
# later pages are full size): sixteen buckets ahead hold 16,000 lines, not sixteen full pages.
_READ_AHEAD_FIRST_PAGE = 1000
# Buckets whose index entries are looked up in one go.
_INDEX_LOOKUP_CHUNK = 16
# How often (in lines examined) a page looks at the clock.
_CLOCK_EVERY = 512


@dataclasses.dataclass(frozen=True)
class Scope:
    """Whose lines: one container, every container of a pod, or every pod of a namespace."""

    namespace: str
    pod_name: str | None = None
    container_name: str | None = None

    def __post_init__(self) -> None:
        if self.container_name is not None and self.pod_name is None:
            raise ValueError("a container scope needs its pod")


def read_lines(
    store: LogStore, scope: Scope, start_ns: int, end_ns: int, *, bucket_seconds: int,
    direction: Direction = Direction.FORWARD, after: Position | None = None, page_size: int = 5000,
    buckets: Collection[int] | None = None,
) -> Iterator[LogLine]:
    """Every line of `scope` with start_ns <= ts <= end_ns, strictly after `after` in `direction`,
    oldest first (newest first when backward). Lazy: reads as it is iterated. `buckets`, when
    given, are the only buckets read (those an index says hold the scope's lines)."""
    slices = plan_slices(start_ns, end_ns, bucket_seconds)
    if buckets is not None:
        slices = [bucket_slice for bucket_slice in slices if bucket_slice.bucket in buckets]
    if direction.backward:
        slices.reverse()
    one_container = scope.container_name is not None
    ahead = _READ_AHEAD_ONE_CONTAINER if one_container else _READ_AHEAD_MANY_CONTAINERS
    if not one_container:
        page_size = min(page_size, 1000)

    def start(bucket_slice: BucketSlice, containers: list[tuple[str, str]], first_page_size: int) -> list[Iterator[LogLine]]:
        reads = []
        for pod_name, container_name in containers:
            bounds = _bounds(bucket_slice, pod_name, container_name, after, direction)
            if bounds is not None:
                partition = (scope.namespace, pod_name, container_name, bucket_slice.bucket)
                read = store.read_range(partition, *bounds, direction=direction, page_size=page_size,
                                        first_page_size=first_page_size)
                reads.append(iter(read))
        return reads

    started: deque[list[Iterator[LogLine]]] = deque()
    for number, (bucket_slice, containers) in enumerate(_slices_with_containers(store, scope, slices)):
        first_page_size = page_size if number == 0 else min(page_size, _READ_AHEAD_FIRST_PAGE)
        started.append(start(bucket_slice, containers, first_page_size))
        if len(started) > ahead:
            yield from _merged(started.popleft(), direction)
    while started:
        yield from _merged(started.popleft(), direction)


def _slices_with_containers(
    store: LogStore, scope: Scope, slices: list[BucketSlice],
) -> Iterator[tuple[BucketSlice, list[tuple[str, str]]]]:
    if scope.container_name is not None:
        only = [(scope.pod_name, scope.container_name)]
        for bucket_slice in slices:
            yield bucket_slice, only  # type: ignore[misc]
        return
    for first in range(0, len(slices), _INDEX_LOOKUP_CHUNK):
        chunk = slices[first:first + _INDEX_LOOKUP_CHUNK]
        found = store.containers_in_buckets(scope.namespace, scope.pod_name, [s.bucket for s in chunk])
        yield from zip(chunk, found)


def _bounds(
    bucket_slice: BucketSlice, pod_name: str, container_name: str, after: Position | None, direction: Direction,
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Inclusive (ts_ns, line_id) bounds of one partition's lines inside the slice and past `after`."""
    low, high = (bucket_slice.start_ns, LINE_ID_MIN), (bucket_slice.end_ns, LINE_ID_MAX)
    if after is not None:
        stream, after_stream = (pod_name, container_name), (after.pod_name, after.container_name)
        if not direction.backward:
            if stream > after_stream:
                edge = (after.ts_ns, LINE_ID_MIN)
            elif stream == after_stream:
                edge = (after.ts_ns, after.line_id + 1) if after.line_id < LINE_ID_MAX else (after.ts_ns + 1, LINE_ID_MIN)
            else:
                edge = (after.ts_ns + 1, LINE_ID_MIN)
            low = max(low, edge)
        else:
            if stream < after_stream:
                edge = (after.ts_ns, LINE_ID_MAX)
            elif stream == after_stream:
                edge = (after.ts_ns, after.line_id - 1) if after.line_id > LINE_ID_MIN else (after.ts_ns - 1, LINE_ID_MAX)
            else:
                edge = (after.ts_ns - 1, LINE_ID_MAX)
            high = min(high, edge)
    return (low, high) if low <= high else None


def _merged(reads: list[Iterator[LogLine]], direction: Direction) -> Iterator[LogLine]:
    if len(reads) == 1:
        return reads[0]
    # (ts_ns, pod, container, line_id) is unique, so tuple order never reaches log or stream.
    return heapq.merge(*reads, reverse=direction.backward)


# --- pages ---


class CutReason(enum.StrEnum):
    """Why a page ended before the lines ran out (a str: it is also the answer's word for it)."""

    LIMIT = "limit"  # the client's limit
    MAX_ROWS = "max_rows"  # the server's cap on one answer
    MAX_SCAN = "max_scan"  # stored lines examined (filters may keep few of them)
    TIMEOUT = "timeout"


@dataclasses.dataclass
class PageEnd:
    """How a page ended; complete once the page's lines have all been consumed."""

    next_after: Position | None = None  # set when the page was cut: the next page starts after it
    reason: CutReason | None = None
    returned: int = 0
    examined: int = 0

    @property
    def cut(self) -> bool:
        return self.next_after is not None


def paginate(
    lines: Iterable[LogLine], end: PageEnd, *, limit: int, limit_reason: CutReason,
    keep: Callable[[LogLine], bool] | None = None, max_scan: int, deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[LogLine]:
    """The lines `keep` accepts, at most `limit` of them, reading at most `max_scan` lines and
    stopping at `deadline` (on `clock`). When it stops before the lines run out, `end` records
    where the next page starts: after the last line examined, kept or not."""
    last: LogLine | None = None
    for line in lines:
        if end.returned == limit:
            return _cut(end, last, limit_reason)
        if end.examined == max_scan:
            return _cut(end, last, CutReason.MAX_SCAN)
        if end.examined % _CLOCK_EVERY == _CLOCK_EVERY - 1 and clock() > deadline:
            return _cut(end, last, CutReason.TIMEOUT)
        end.examined += 1
        last = line
        if keep is None or keep(line):
            end.returned += 1
            yield line


def _cut(end: PageEnd, last: LogLine | None, reason: CutReason) -> None:
    if last is not None:
        end.next_after, end.reason = last.position, reason
