"""The log store's boundary: what the fronts, the query engine and the workers need from a store,
and the types they exchange with it. `common.store.CassandraStore` implements it; the unit tests'
FakeStore does too, and one contract test runs the same cases on both.

As the seed's `LogStore` interface: write, ranged reads of one partition, the discovery index,
and a readiness ping. Nothing here knows CQL.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from common.partitions import PartitionKey

if TYPE_CHECKING:
    from common.records import LogRow


class Direction(enum.Enum):
    """Which way a read goes through the (ts_ns, pod, container, line_id) order."""

    FORWARD = "forward"  # oldest first
    BACKWARD = "backward"  # newest first

    @property
    def backward(self) -> bool:
        return self is Direction.BACKWARD


class Position(NamedTuple):
    """A line's place in the global order."""

    ts_ns: int
    pod_name: str
    container_name: str
    line_id: int


class LogLine(NamedTuple):
    ts_ns: int
    pod_name: str
    container_name: str
    line_id: int
    log: str
    stream: str | None

    @property
    def position(self) -> Position:
        return Position(self.ts_ns, self.pod_name, self.container_name, self.line_id)


class SeriesEntry(NamedTuple):
    """One label set with lines in a bucket: a container, the stream of its lines (None when they
    have none) and the row's other labels (Loki's stream labels, or fluent-bit's pod labels)."""

    namespace: str
    pod_name: str
    container_name: str
    stream: str | None
    labels: dict[str, str]

    @property
    def key(self) -> tuple:
        return (self.namespace, self.pod_name, self.container_name, self.stream or "",
                tuple(sorted(self.labels.items())))


# An inclusive bound on a partition's clustering order.
Bound = tuple[int, int]  # (ts_ns, line_id)


class StoreUnavailable(Exception):
    """The store did not answer, or answered with an error that a later retry may not see."""


class StoreConfigError(StoreUnavailable):
    """The existing schema disagrees with the settings (e.g. another bucket size): the message says
    which setting to change. A StoreUnavailable, so the API answers 503 with it wherever it needs
    the store; a worker stops on it instead (workers.runner)."""


class WriteRefused(Exception):
    """The store refused a write for a reason of its own (not an outage, not its size)."""


class BatchNeverWritable(Exception):
    """A row of the batch is too large for the store even in a request of its own."""


class LogStore(Protocol):
    def ping(self, timeout: float) -> None:
        """Raise StoreUnavailable unless the store answers within `timeout` seconds."""

    def write(self, rows: Sequence[LogRow]) -> int:
        """Write every row idempotently (the same rows give the same keys), and the index entries
        that find them; returns the partitions touched."""

    def write_batches(self, batches: Sequence[Sequence[LogRow]]) -> dict[PartitionKey, int]:
        """write() of several queued batches at once, each line keeping the identity its own batch
        gives it (common.row_keys: an offset-less line's position counts within its batch);
        returns the lines written per partition."""

    def read_range(self, partition: PartitionKey, low: Bound, high: Bound, *, direction: Direction,
                   page_size: int, first_page_size: int | None = None) -> Iterable[LogLine]:
        """One partition's lines between two inclusive bounds, in `direction`; fetched lazily, the
        first page (of first_page_size lines if given) requested at once."""

    def containers_in_buckets(self, namespace: str, pod_name: str | None,
                              buckets: Sequence[int]) -> list[list[tuple[str, str]]]:
        """Per bucket, the sorted (pod_name, container_name) pairs of a namespace (or one pod) with lines."""

    def namespaces_in_buckets(self, buckets: Sequence[int]) -> list[list[str]]:
        """Per bucket, the sorted namespaces with lines."""

    def series_in_buckets(self, buckets: Sequence[int]) -> list[list[SeriesEntry]]:
        """Per bucket, its label sets with lines, sorted by SeriesEntry.key."""

    def close(self) -> None:
        """Release connections (the store may reconnect on the next call)."""
