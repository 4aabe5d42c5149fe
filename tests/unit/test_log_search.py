"""common.log_search: one global line order across buckets, containers and pods, and pages that
never skip or repeat a line (in-memory store with Cassandra's order and bounds)."""

from __future__ import annotations

import time

import pytest

from common.log_search import PageEnd, Position, Scope, paginate, read_lines
from common.log_store import Direction
from tests.unit.api_harness import FakeStore

HOUR = 3600 * 10**9
T0 = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % HOUR  # a bucket border
NS = "shop"


def store_with(*lines) -> FakeStore:
    """lines: (pod, container, ts_ns, log[, stream])"""
    store = FakeStore()
    for pod, container, ts_ns, log, *stream in lines:
        store.add(NS, pod, container, ts_ns, log, *stream)
    return store


def logs(lines) -> list[str]:
    return [line.log for line in lines]


def read(store, scope=Scope(NS, "web", "app"), start=T0 - 10 * HOUR, end=T0 + 10 * HOUR, **kwargs):
    return list(read_lines(store, scope, start, end, bucket_seconds=3600, **kwargs))


def page_through(store, scope, *, limit, direction=Direction.FORWARD):
    """Every page of `limit` lines, following next_after until the end: (pages, all lines)."""
    after, pages = None, []
    while True:
        end = PageEnd()
        lines = list(paginate(read(store, scope, direction=direction, after=after), end, limit=limit,
                              limit_reason="limit", max_scan=10**9, deadline=time.monotonic() + 60))
        pages.append(lines)
        if not end.cut:
            return pages, [line for page in pages for line in page]
        after = end.next_after


def test_one_container_reads_oldest_first_across_bucket_borders():
    store = store_with(("web", "app", T0 + 1, "after border"), ("web", "app", T0 - 1, "before border"))
    assert logs(read(store)) == ["before border", "after border"]


def test_backward_reads_newest_first_across_bucket_borders():
    store = store_with(("web", "app", T0 - 1, "before border"), ("web", "app", T0 + 1, "after border"))
    assert logs(read(store, direction=Direction.BACKWARD)) == ["after border", "before border"]


def test_the_range_is_inclusive_at_both_ends():
    store = store_with(*[("web", "app", T0 + i, str(i)) for i in range(5)])
    assert logs(read(store, start=T0 + 1, end=T0 + 3)) == ["1", "2", "3"]


def test_lines_with_the_same_nanosecond_keep_the_order_they_were_written_in():
    store = store_with(*[("web", "app", T0, f"line {i}") for i in range(5)])
    assert logs(read(store)) == [f"line {i}" for i in range(5)]


def test_a_pod_scope_merges_its_containers_in_time_order():
    store = store_with(("web", "app", T0 + 2, "app 2"), ("web", "proxy", T0 + 1, "proxy 1"),
                       ("web", "app", T0 + 3, "app 3"), ("web", "proxy", T0 + 4, "proxy 4"),
                       ("other", "app", T0 + 2, "other pod"))
    lines = read(store, Scope(NS, "web"))
    assert logs(lines) == ["proxy 1", "app 2", "app 3", "proxy 4"]
    assert [line.container_name for line in lines] == ["proxy", "app", "app", "proxy"]


def test_a_namespace_scope_merges_every_pod_and_breaks_time_ties_by_pod_then_container():
    store = store_with(("b", "x", T0, "b/x"), ("a", "y", T0, "a/y"), ("a", "x", T0, "a/x"),
                       ("a", "x", T0 - 1, "first"))
    assert logs(read(store, Scope(NS))) == ["first", "a/x", "a/y", "b/x"]


def test_a_namespace_scope_leaves_other_namespaces_out():
    store = store_with(("web", "app", T0, "mine"))
    store.add("elsewhere", "web", "app", T0, "not mine")
    assert logs(read(store, Scope(NS))) == ["mine"]


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("scope", [Scope(NS, "web", "app"), Scope(NS, "web"), Scope(NS)], ids=str)
def test_paging_returns_every_line_exactly_once_when_many_share_a_timestamp(scope, direction):
    lines = [(pod, container, T0 + (i // 7) * 1000, f"{pod}/{container} {i}")
             for i in range(60) for pod, container in (("web", "app"), ("web", "proxy"), ("db", "pg"))]
    store = store_with(*lines)
    wanted = read(store, scope, direction=direction)
    pages, seen = page_through(store, scope, limit=4, direction=direction)
    assert seen == wanted
    assert len(set(seen)) == len(seen)
    assert all(len(page) == 4 for page in pages[:-1])


def test_paging_backward_yields_the_forward_order_reversed():
    store = store_with(*[("web", "app", T0 + i // 3, str(i)) for i in range(20)])
    _, forward = page_through(store, Scope(NS, "web", "app"), limit=3)
    _, backward = page_through(store, Scope(NS, "web", "app"), limit=3, direction=Direction.BACKWARD)
    assert backward == forward[::-1]


def test_a_page_that_ends_exactly_at_the_last_line_is_not_cut():
    store = store_with(*[("web", "app", T0 + i, str(i)) for i in range(4)])
    end = PageEnd()
    lines = list(paginate(read(store), end, limit=4, limit_reason="limit", max_scan=100,
                          deadline=time.monotonic() + 60))
    assert len(lines) == 4 and not end.cut


def test_a_filtered_page_continues_after_the_last_line_examined_not_the_last_kept():
    store = store_with(*[("web", "app", T0 + i, "match" if i in (0, 5) else "other") for i in range(8)])
    end = PageEnd()
    lines = list(paginate(read(store), end, limit=10, limit_reason="limit", keep=lambda l: l.log == "match",
                          max_scan=3, deadline=time.monotonic() + 60))
    assert logs(lines) == ["match"]
    assert (end.reason, end.examined, end.next_after.ts_ns) == ("max_scan", 3, T0 + 2)


def test_a_page_past_its_deadline_is_cut_with_a_place_to_go_on_from():
    store = store_with(*[("web", "app", T0 + i, str(i)) for i in range(2000)])
    end = PageEnd()
    lines = list(paginate(read(store), end, limit=10**6, limit_reason="limit", max_scan=10**6,
                          deadline=time.monotonic() - 1))
    assert end.reason == "timeout"
    assert end.next_after == lines[-1].position


def test_reading_after_a_position_starts_strictly_after_it():
    store = store_with(*[("web", "app", T0, str(i)) for i in range(3)])
    first = read(store)[0]
    assert logs(read(store, after=first.position)) == ["1", "2"]


def test_a_bucket_without_index_entries_is_not_read():
    store = store_with(("web", "app", T0 + 5 * HOUR, "late"))
    read(store, Scope(NS, "web"))
    assert {r[3] for r in store.reads} == {(T0 + 5 * HOUR) // 10**9}


class PageSizeRecordingStore(FakeStore):
    def __init__(self):
        super().__init__()
        self.first_pages: list[tuple[int, int | None]] = []  # (bucket, first_page_size)

    def read_range(self, partition, low, high, *, direction, page_size, first_page_size=None):
        self.first_pages.append((partition[3], first_page_size))
        return super().read_range(partition, low, high, direction=direction, page_size=page_size)


def test_the_first_bucket_is_read_in_full_pages_and_the_buckets_read_ahead_start_with_small_ones():
    store = PageSizeRecordingStore()
    read(store, start=T0, end=T0 + 3 * HOUR - 1, page_size=20_000)
    first_bucket = T0 // 10**9
    assert store.first_pages == [(first_bucket, 20_000), (first_bucket + 3600, 1000), (first_bucket + 7200, 1000)]


def test_a_container_scope_needs_its_pod():
    with pytest.raises(ValueError):
        Scope(NS, None, "app")


def test_positions_order_by_time_then_pod_then_container_then_line_id():
    assert Position(1, "b", "a", 0) < Position(2, "a", "a", 0)
    assert Position(1, "a", "b", 0) < Position(1, "b", "a", 0)
    assert Position(1, "a", "a", 9) < Position(1, "a", "b", 0)
