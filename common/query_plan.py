"""Turning a query's time range into one read per time bucket (the seed's querySplitter)."""

from __future__ import annotations

import dataclasses

from common.partitions import bucket_of
from common.timestamps import NS_PER_SECOND


@dataclasses.dataclass(frozen=True)
class BucketSlice:
    bucket: int  # bucket start, epoch seconds
    start_ns: int  # inclusive
    end_ns: int  # inclusive


def plan_slices(start_ns: int, end_ns: int, bucket_seconds: int) -> list[BucketSlice]:
    """The inclusive range [start_ns, end_ns] cut at every bucket border, oldest first."""
    if end_ns < start_ns:
        return []
    bucket_ns = bucket_seconds * NS_PER_SECOND
    slices = []
    bucket = bucket_of(start_ns, bucket_seconds)
    last = bucket_of(end_ns, bucket_seconds)
    while bucket <= last:
        bucket_start = bucket * NS_PER_SECOND
        slices.append(
            BucketSlice(bucket, max(start_ns, bucket_start), min(end_ns, bucket_start + bucket_ns - 1))
        )
        bucket += bucket_seconds
    return slices
