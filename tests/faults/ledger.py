"""A client-side ledger: every record that got a 2xx, checked against Cassandra at the end."""

from __future__ import annotations

import collections
import dataclasses
import threading

from common.store import CassandraStore
from tests.store_reads import stored_lines


@dataclasses.dataclass
class Ledger:
    acknowledged: list[tuple[str, str, int, str]] = dataclasses.field(default_factory=list)
    refused: int = 0  # records in answers other than 2xx, once per attempt
    sent: int = 0  # distinct records posted: a retried batch counts once
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, rows: list[tuple[str, str, int, str]], status: int, *, retry: bool = False) -> None:
        """One answer to a POST of `rows` (thread-safe); `retry` when the same rows were posted before."""
        with self._lock:
            if not retry:
                self.sent += len(rows)
            if 200 <= status < 300:
                self.acknowledged += rows
            else:
                self.refused += len(rows)

    def reconcile(self, store: CassandraStore, namespace: str) -> "Reconciliation":
        """Compare the ledger with what the store's own query path returns for its containers."""
        spans: dict[tuple[str, str], list[int]] = {}
        for pod, container, ts_ns, _ in self.acknowledged:
            span = spans.setdefault((pod, container), [ts_ns, ts_ns])
            span[0], span[1] = min(span[0], ts_ns), max(span[1], ts_ns)
        stored = collections.Counter()
        for (pod, container), (first, last) in spans.items():
            for ts_ns, log in stored_lines(store, namespace, pod, container, first, last,
                                           bucket_seconds=store.bucket_seconds):
                stored[(pod, container, ts_ns, log)] += 1
        expected = collections.Counter(self.acknowledged)
        return Reconciliation(
            sent=self.sent,
            acknowledged=len(self.acknowledged),
            stored=sum(stored.values()),
            missing=sum((expected - stored).values()),
            unexpected=sum((stored - expected).values()),
            duplicates=sum(n - 1 for n in stored.values() if n > 1),
        )


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    sent: int
    acknowledged: int
    stored: int
    missing: int
    unexpected: int
    duplicates: int

    def __str__(self) -> str:
        return (f"sent={self.sent} acknowledged={self.acknowledged} stored={self.stored} "
                f"missing={self.missing} unexpected={self.unexpected} duplicates={self.duplicates}")
