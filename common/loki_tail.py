"""Loki's tail on the tail engine (api/tail.py): what a LogQL log query's tail reads, where it
starts, and the frames it sends. No HTTP, no WebSocket, no CQL.

- What it reads (`SelectionReader`): each poll selects again, from the series index of the poll's
  window, the containers and streams the selector matches (a pod that starts during the tail is
  followed from its first line), and reads their lines merged in the global order.
- Where it starts: Loki sends the newest `limit` lines between `start` and now first, oldest first,
  then every new line. `history_start` finds the line just before those (the `limit`+1-th newest line
  the query keeps), and the follower starts right after it.
- `delay_for` (0 to 5 s): each poll reads up to `delay_for` before now, so lines that land up to
  that late still come in order.
- Frames (`frame`): `{"streams": [{"stream": labels, "values": [["<ns>", "line"], ...]}]}`, the
  lines of one poll grouped by label set. Loki adds `dropped_entries` only when its tailer dropped
  lines; this one never drops a line (the next poll reads on from the store), so it never sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from common.log_store import Direction, LogStore, Position
from common.logql import LogQuery
from common.logql_eval import pipeline
from common.loki_labels import LokiLabelNames
from common.loki_read import Budget, Caps, SelectedLine, selected_lines, series_by_bucket
from common.loki_select import select
from common.timestamps import NS_PER_SECOND

MAX_DELAY_FOR_SECONDS = 5  # as Loki
_PAGE_SIZE = 1000
_json = msgspec.json.Encoder()

Entry = tuple[dict[str, str], int, str]  # (stream labels, ts_ns, line)


class SelectionReader:
    """The follower's reader (api.tail.Reader) for a log query's selector."""

    def __init__(self, store: LogStore, query: LogQuery, names: LokiLabelNames, bucket_seconds: int,
                 delay_for_seconds: int = 0):
        self._store = store
        self._selector = query.selector
        self._names = names
        self._bucket_seconds = bucket_seconds
        self._delay_ns = delay_for_seconds * NS_PER_SECOND

    def __call__(self, start_ns: int, end_ns: int, after: Position | None, page_size: int) -> Iterator[SelectedLine]:
        end_ns -= self._delay_ns
        if end_ns < start_ns:
            return iter(())
        selection = select(self._selector, series_by_bucket(self._store, start_ns, end_ns, self._bucket_seconds),
                           self._names)
        return selected_lines(self._store, selection, start_ns, end_ns, Direction.FORWARD, page_size,
                              self._bucket_seconds, after=after)

    def backward(self, start_ns: int, end_ns: int) -> Iterator[SelectedLine]:
        """The selection's lines with start_ns <= ts <= end_ns, newest first."""
        selection = select(self._selector, series_by_bucket(self._store, start_ns, end_ns, self._bucket_seconds),
                           self._names)
        return selected_lines(self._store, selection, start_ns, end_ns, Direction.BACKWARD, _PAGE_SIZE,
                              self._bucket_seconds)


class Rendered:
    """A log query's pipeline over followed lines: (labels, ts_ns, line), or None for a dropped one."""

    def __init__(self, query: LogQuery):
        self._run = pipeline(query)

    def __call__(self, item: SelectedLine) -> Entry | None:
        labels = item.labels
        if labels is None:
            return None
        out = self._run(item.line.log, labels)
        if out is None:
            return None
        return out[1], item.ts_ns, out[0]


def history_start(query: LogQuery, reader: SelectionReader, start_ns: int, end_ns: int, limit: int,
                  caps: Caps) -> Position | None:
    """Where the follower starts so that the first lines are the newest `limit` the query keeps in
    [start_ns, end_ns]: right after the position returned (None: from start_ns, there are fewer).
    Reads backward from end_ns, bounded by QUERY_MAX_SCAN_ROWS and QUERY_TIMEOUT_SECONDS."""
    render = Rendered(query)
    scan = Budget(caps)
    kept = 0
    for item in reader.backward(start_ns, end_ns):
        scan.examine()
        if render(item) is not None:
            kept += 1
            if kept > limit:
                return item.position
    return None


def frame(entries: Iterable[Entry]) -> str:
    """One tail message: the entries grouped by label set, each group in the entries' order."""
    streams: dict[tuple, dict] = {}
    for labels, ts_ns, line in entries:
        key = tuple(sorted(labels.items()))
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = {"stream": dict(key), "values": []}
        stream["values"].append([str(ts_ns), line])
    return _json.encode({"streams": list(streams.values())}).decode()
