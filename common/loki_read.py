"""Answering LogQL over the store: the lines of the selected containers, merged in the global order,
through the query's pipeline, grouped into Loki's streams or counted into its matrix. No HTTP, no
CQL: the store's reads (common.log_search) and the series index (common.loki_select).

Loki's range is start inclusive, end exclusive. A log query answers at most `limit` lines, plus
the lines sharing the last one's timestamp (at most `max_rows` in all): Loki's clients page by time
(logcli starts the next page at that timestamp, or ends it one nanosecond after it, and skips the
lines it already printed at that timestamp), so a page cut inside one timestamp must hold all of
that timestamp's lines, or the next page could not tell which ones it has not seen.

A read that reaches QUERY_MAX_SCAN_ROWS or QUERY_TIMEOUT_SECONDS before its answer is complete is
refused (QueryTooLarge): a page or a count over part of the lines would be a wrong answer.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from common.errors import ParameterError
from common.log_search import Scope, read_lines
from common.log_store import Direction, LogLine, LogStore, Position
from common.logql import LogQuery, RangeAggregation, VectorAggregation
from common.logql_eval import Series, evaluate_metric, pipeline, read_bounds
from common.loki_select import Selection
from common.query_plan import plan_slices

# Rows a partition read fetches per round trip.
_PAGE_SIZE = 20_000
_CLOCK_EVERY = 512


class QueryTooLarge(ParameterError):
    """The read hit a server cap before the answer was complete: the client narrows the query."""

    def __init__(self, detail: str):
        super().__init__("query", detail)


@dataclasses.dataclass(frozen=True)
class Caps:
    max_rows: int  # QUERY_MAX_ROWS: lines in one answer, a shared timestamp's lines included
    max_scan: int  # QUERY_MAX_SCAN_ROWS: stored lines examined
    timeout_seconds: float  # QUERY_TIMEOUT_SECONDS
    bucket_seconds: int
    clock: Callable[[], float] = time.monotonic


Stream = tuple[dict[str, str], list[tuple[int, str]]]


def log_streams(store: LogStore, query: LogQuery, selection: Selection, start_ns: int, end_ns: int, *,
                limit: int, direction: Direction, caps: Caps) -> list[Stream]:
    """Loki's `streams` for [start_ns, end_ns): (labels, [(ts_ns, line)] in `direction`) per label set."""
    run = pipeline(query)
    limit = min(limit, caps.max_rows)
    page_size = min(limit + 1, _PAGE_SIZE) if not query.stages else _PAGE_SIZE
    lines = selected_lines(store, selection, start_ns, end_ns - 1, direction, page_size, caps.bucket_seconds)
    budget = Budget(caps)
    streams: dict[object, Stream] = {}
    by_identity: dict[int, Stream] = {}
    kept = 0
    last_ts = None
    for line, labels_of in lines:
        if kept >= limit and (line.ts_ns != last_ts or kept >= caps.max_rows):
            # Past the limit only the last timestamp's other lines, and never more than an answer holds.
            return list(streams.values())
        budget.examine()
        labels = labels_of.get(line.stream)
        if labels is None:
            continue
        out = run(line.log, labels)
        if out is None:
            continue
        text, final = out
        stream = by_identity.get(id(final)) if final is labels else None
        if stream is None:
            key = tuple(sorted(final.items()))
            stream = streams.get(key)
            if stream is None:
                stream = streams[key] = (dict(key), [])
            if final is labels:
                by_identity[id(final)] = stream
        stream[1].append((line.ts_ns, text))
        kept += 1
        last_ts = line.ts_ns
    return list(streams.values())


def metric_samples(store: LogStore, query: RangeAggregation | VectorAggregation, selection: Selection,
                   start_ns: int, end_ns: int, step_ns: int, *, caps: Caps) -> list[Series]:
    """Loki's matrix of a metric query over [start_ns, end_ns] (both evaluation times included)."""
    inner = query
    while isinstance(inner, VectorAggregation):
        inner = inner.inner
    run = pipeline(inner.log_query)
    from_ns, to_ns = read_bounds(query, start_ns, end_ns)
    budget = Budget(caps)
    samples = []
    for line, labels_of in selected_lines(store, selection, from_ns + 1, to_ns, Direction.FORWARD, _PAGE_SIZE,
                                  caps.bucket_seconds):
        budget.examine()
        labels = labels_of.get(line.stream)
        if labels is None:
            continue
        out = run(line.log, labels)
        if out is not None:
            samples.append((line.ts_ns, out[1]))
    return evaluate_metric(query, samples, start_ns, end_ns, step_ns)


class Budget:
    """QUERY_MAX_SCAN_ROWS and QUERY_TIMEOUT_SECONDS over one read: `examine()` each stored line."""

    def __init__(self, caps: Caps):
        self._caps = caps
        self._deadline = caps.clock() + caps.timeout_seconds
        self.examined = 0

    def examine(self) -> None:
        self.examined += 1
        if self.examined > self._caps.max_scan:
            raise QueryTooLarge(
                f"the query would read more than QUERY_MAX_SCAN_ROWS={self._caps.max_scan} stored lines; "
                "narrow the time range or the stream selector")
        if self.examined % _CLOCK_EVERY == 0 and self._caps.clock() > self._deadline:
            raise QueryTooLarge(
                f"the query took longer than QUERY_TIMEOUT_SECONDS={self._caps.timeout_seconds:g} after reading "
                f"{self.examined} stored lines; narrow the time range or the stream selector")


def series_by_bucket(store: LogStore, start_ns: int, end_ns: int, bucket_seconds: int) -> dict[int, list]:
    """The series index's entries of every bucket in [start_ns, end_ns], by bucket."""
    buckets = [piece.bucket for piece in plan_slices(start_ns, end_ns, bucket_seconds)]
    return dict(zip(buckets, store.series_in_buckets(buckets)))


class SelectedLine(NamedTuple):
    """A stored line of a selection, with its container's Loki labels per stream."""

    line: LogLine
    labels_of: dict[str | None, dict[str, str]]

    @property
    def ts_ns(self) -> int:
        return self.line.ts_ns

    @property
    def position(self) -> Position:
        return self.line.position

    @property
    def labels(self) -> dict[str, str] | None:
        """The line's stream labels (None: a stream the selector did not pick)."""
        return self.labels_of.get(self.line.stream)


def selected_lines(store: LogStore, selection: Selection, start_ns: int, end_ns: int, direction: Direction,
                   page_size: int, bucket_seconds: int, after: Position | None = None) -> Iterator[SelectedLine]:
    """Every selected container's lines with start_ns <= ts <= end_ns (strictly after `after`, when
    given), in the global order."""
    if end_ns < start_ns:
        return iter(())
    reads = []
    for container in selection.containers:
        namespace, pod_name, container_name = container
        lines = read_lines(store, Scope(namespace, pod_name, container_name), start_ns, end_ns,
                           bucket_seconds=bucket_seconds, direction=direction, page_size=page_size,
                           buckets=selection.buckets[container], after=after)
        reads.append(_tagged(lines, selection.streams[container]))
    if len(reads) == 1:
        return reads[0]
    return heapq.merge(*reads, key=_order, reverse=direction.backward)


def _tagged(lines: Iterator[LogLine], labels_of: dict) -> Iterator[SelectedLine]:
    for line in lines:
        yield SelectedLine(line, labels_of)


def _order(item: SelectedLine) -> tuple:
    line = item.line
    return line.ts_ns, line.pod_name, line.container_name, line.line_id

