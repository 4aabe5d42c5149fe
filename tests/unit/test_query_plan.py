"""common.query_plan.plan_slices: one inclusive [start_ns, end_ns] read per time bucket."""

from __future__ import annotations

import calendar

from hypothesis import given
from hypothesis import strategies as st

from common.query_plan import BucketSlice, plan_slices

NS = 1_000_000_000
HOUR = 3600
DAY = 86400
MIDNIGHT = calendar.timegm((2026, 3, 15, 0, 0, 0))  # 2026-03-15T00:00:00Z, a day border
NOON = MIDNIGHT - 12 * HOUR  # 2026-03-14T12:00:00Z, an hour border


def test_a_range_inside_one_bucket_is_one_slice_with_the_range_unchanged():
    start, end = (NOON + 60) * NS, (NOON + 120) * NS
    assert plan_slices(start, end, HOUR) == [BucketSlice(NOON, start, end)]


def test_a_range_crossing_an_hour_border_is_cut_at_the_border():
    start, end = (NOON - 30) * NS, (NOON + 30) * NS
    assert plan_slices(start, end, HOUR) == [
        BucketSlice(NOON - HOUR, start, NOON * NS - 1),
        BucketSlice(NOON, NOON * NS, end),
    ]


def test_a_range_crossing_a_day_border_with_day_buckets_is_cut_at_midnight():
    start, end = MIDNIGHT * NS - 500_000_000, MIDNIGHT * NS + 500_000_000
    assert plan_slices(start, end, DAY) == [
        BucketSlice(MIDNIGHT - DAY, start, MIDNIGHT * NS - 1),
        BucketSlice(MIDNIGHT, MIDNIGHT * NS, end),
    ]


def test_a_range_just_after_midnight_with_day_buckets_is_one_slice():
    start, end = MIDNIGHT * NS + 1, MIDNIGHT * NS + 2
    assert plan_slices(start, end, DAY) == [BucketSlice(MIDNIGHT, start, end)]


def test_a_range_spanning_several_buckets_gets_full_middle_slices_oldest_first():
    start, end = (NOON + 10) * NS, (NOON + 2 * HOUR + 10) * NS
    assert plan_slices(start, end, HOUR) == [
        BucketSlice(NOON, start, (NOON + HOUR) * NS - 1),
        BucketSlice(NOON + HOUR, (NOON + HOUR) * NS, (NOON + 2 * HOUR) * NS - 1),
        BucketSlice(NOON + 2 * HOUR, (NOON + 2 * HOUR) * NS, end),
    ]


def test_a_single_instant_is_one_slice_of_one_nanosecond():
    at = NOON * NS + 7
    assert plan_slices(at, at, HOUR) == [BucketSlice(NOON, at, at)]


def test_a_range_starting_exactly_on_a_border_reads_only_the_bucket_it_opens():
    start, end = NOON * NS, (NOON + 5) * NS
    assert plan_slices(start, end, HOUR) == [BucketSlice(NOON, start, end)]


def test_a_range_ending_exactly_on_a_border_includes_that_instant_from_the_next_bucket():
    start, end = (NOON - 5) * NS, NOON * NS
    assert plan_slices(start, end, HOUR) == [
        BucketSlice(NOON - HOUR, start, NOON * NS - 1),
        BucketSlice(NOON, NOON * NS, NOON * NS),
    ]


def test_a_range_ending_one_nanosecond_before_a_border_stays_in_one_bucket():
    start, end = (NOON - 5) * NS, NOON * NS - 1
    assert plan_slices(start, end, HOUR) == [BucketSlice(NOON - HOUR, start, end)]


def test_a_whole_bucket_is_exactly_one_slice():
    start, end = NOON * NS, (NOON + HOUR) * NS - 1
    assert plan_slices(start, end, HOUR) == [BucketSlice(NOON, start, end)]


def test_a_range_whose_end_is_before_its_start_is_empty():
    assert plan_slices(NOON * NS, NOON * NS - 1, HOUR) == []


@given(
    start=st.integers(min_value=0, max_value=2**62),
    length=st.integers(min_value=0, max_value=10 * DAY * NS),
    bucket_seconds=st.sampled_from([60, 90, HOUR, DAY]),
)
def test_slices_tile_the_range_exactly_with_one_slice_per_bucket(start, length, bucket_seconds):
    end = start + length
    slices = plan_slices(start, end, bucket_seconds)
    assert slices[0].start_ns == start
    assert slices[-1].end_ns == end
    for earlier, later in zip(slices, slices[1:]):
        assert later.start_ns == earlier.end_ns + 1
        assert later.bucket == earlier.bucket + bucket_seconds
    for piece in slices:
        assert piece.bucket * NS <= piece.start_ns <= piece.end_ns < (piece.bucket + bucket_seconds) * NS
