"""Reading query_range page by page the way logcli does (pkg/logcli/query/query.go, DoQuery):
forward, the next page starts at the last line's timestamp; backward, it ends one nanosecond
after it (end is exclusive); the lines of that timestamp already printed are skipped by their
text. Returns every line printed, in order, as (ts_ns, line)."""

from __future__ import annotations

from collections.abc import Callable


def logcli_read(get: Callable[[dict], dict], query: str, start_ns: int, end_ns: int, *, batch: int,
                direction: str, max_pages: int = 10_000) -> list[tuple[int, str]]:
    printed: list[tuple[int, str]] = []
    last_ts, last_lines = None, set()
    for _ in range(max_pages):
        answer = get({"query": query, "start": str(start_ns), "end": str(end_ns), "limit": str(batch),
                      "direction": direction})
        assert answer["status"] == "success" and answer["data"]["resultType"] == "streams", answer
        entries = sorted(((int(ts), line) for stream in answer["data"]["result"] for ts, line in stream["values"]),
                         key=lambda entry: entry[0], reverse=direction == "backward")
        new = [entry for entry in entries if not (entry[0] == last_ts and entry[1] in last_lines)]
        printed += new
        if not new:
            return printed
        last_ts = entries[-1][0]
        last_lines = {line for ts, line in entries if ts == last_ts}
        if direction == "forward":
            start_ns = last_ts
        else:
            end_ns = last_ts + 1
    raise AssertionError("more pages than expected")


def read_past_each_page(get: Callable[[dict], dict], query: str, start_ns: int, end_ns: int, *, batch: int,
                        direction: str, max_pages: int = 10_000) -> list[tuple[int, str]]:
    """Paging by time without overlap: the next page starts after the last line's timestamp
    (forward: start = last + 1 ns; backward: end = last, exclusive). Correct only when a page
    holds every line of its last timestamp."""
    read: list[tuple[int, str]] = []
    for _ in range(max_pages):
        answer = get({"query": query, "start": str(start_ns), "end": str(end_ns), "limit": str(batch),
                      "direction": direction})
        entries = sorted(((int(ts), line) for stream in answer["data"]["result"] for ts, line in stream["values"]),
                         key=lambda entry: entry[0], reverse=direction == "backward")
        if not entries:
            return read
        read += entries
        if direction == "forward":
            start_ns = entries[-1][0] + 1
        else:
            end_ns = entries[-1][0]
    raise AssertionError("more pages than expected")
