"""Scenario: the merge of small blocks, run by workers' maintenance, SIGKILLed midway five times.

Batches of 10 lines for each of 30 containers make 30 x 40 small blocks. Workers merging them
(BLOCK_MERGE_AFTER_SECONDS=1) are killed while a merge pass runs, each a moment after it finished
a partition; a last worker finishes. Ledger: every acknowledged line reads back once, and the
blocks hold each line once (no copy left behind by an interrupted merge), one block per container."""

from __future__ import annotations

import dataclasses
import random
import time

import pytest

from common.merge_candidates import MergeCandidates
from common.queue import connect_redis
from common.schema import BLOCK_TABLE
from common.store import CassandraStore
from tests.faults import processes
from tests.faults.ledger import Ledger
from tests.integration.pipeline import build_pipeline, unique
from tests.records import fluent_bit_record
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PODS = 30
BATCHES = 40
LINES_PER_POD = 10
KILLS = 5
MERGING = {"BLOCK_MERGE_AFTER_SECONDS": "1", "MAINTENANCE_INTERVAL_SECONDS": "5", "WORKER_BATCHES_PER_WRITE": "1"}


def test_merges_killed_midway_lose_nothing_and_leave_each_line_stored_once(integration_settings, tmp_path):
    settings = dataclasses.replace(integration_settings, cassandra_layout="blocks", queue_name=unique("merge-kill"))
    store = CassandraStore(settings)
    try:
        _merge_killed_midway(settings, store, tmp_path)
    finally:
        store.close()


def _merge_killed_midway(settings, store, tmp_path) -> None:
    store.connect()
    pipeline = build_pipeline(settings, store)
    namespace, ledger = unique("merged"), Ledger()
    base = 1_700_000_000 * 10**9
    for batch in range(BATCHES):
        rows = [(f"pod-{p}", "app", base + (batch * LINES_PER_POD + i) * 10**7 + p, f"batch {batch} pod {p} line {i}")
                for p in range(PODS) for i in range(LINES_PER_POD)]
        records = [fluent_bit_record(namespace, pod, c, time=ts, log=log, stream=None) for pod, c, ts, log in rows]
        ledger.record(rows, pipeline.post(records).status_code)
    assert len(ledger.acknowledged) == PODS * BATCHES * LINES_PER_POD

    log_path = tmp_path / "workers.log"
    # one batch per write, merging on but nothing due yet: a small block per container per batch
    drainer = processes.start("worker", settings, log_path, **{**MERGING, "BLOCK_MERGE_AFTER_SECONDS": "3600"})
    try:
        wait_for(lambda: pipeline.queue.unwritten_batches() == 0, timeout=120, what="every batch written")
    finally:
        processes.stop(drainer)
    candidates = MergeCandidates(connect_redis(settings), settings.queue_name)
    assert candidates.count() == PODS
    assert block_count(store, settings, namespace) == PODS * BATCHES

    time.sleep(1.1)  # the blocks are now older than BLOCK_MERGE_AFTER_SECONDS
    killed_mid_pass = 0
    for _ in range(KILLS):
        before = candidates.count()
        worker = processes.start("worker", settings, log_path, **MERGING)
        wait_for(lambda: candidates.count() < before or worker.poll() is not None, timeout=60,
                 what="a merge pass to finish a partition")
        time.sleep(random.uniform(0.0, 0.05))
        killed_mid_pass += candidates.count() > 0
        processes.kill(worker)
    # more lines in blocks than acknowledged: a kill landed between a merge's write and its deletes
    copies_after_kills = stored_line_count(store, settings, namespace)
    survivor = processes.start("worker", settings, log_path, **MERGING)
    try:
        wait_for(lambda: candidates.count() == 0, timeout=180, interval=0.5, what="every partition merged")
    finally:
        processes.stop(survivor)

    result = ledger.reconcile(store, namespace)
    copies = stored_line_count(store, settings, namespace)
    blocks = block_count(store, settings, namespace)
    print(f"\n[merge-killed] kills={KILLS} killed_mid_pass={killed_mid_pass} {result} "
          f"blocks={PODS * BATCHES}->{blocks} lines_in_blocks_after_kills={copies_after_kills} lines_in_blocks={copies}")
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged
    assert copies == result.acknowledged, "an interrupted merge left a copy of some lines behind"
    assert blocks == PODS
    assert killed_mid_pass == KILLS


def _block_rows(store, settings, namespace: str, column: str) -> list[int]:
    session = store.connect()
    bucket = 1_700_000_000 - 1_700_000_000 % settings.cassandra_bucket_seconds
    values = []
    for p in range(PODS):
        rows = session.execute(
            f"SELECT {column} FROM {settings.cassandra_keyspace}.{BLOCK_TABLE} WHERE namespace = %s AND "
            "pod_name = %s AND container_name = 'app' AND bucket = %s", (namespace, f"pod-{p}", bucket), timeout=60)
        values += [row[0] for row in rows]
    return values


def block_count(store, settings, namespace: str) -> int:
    return len(_block_rows(store, settings, namespace, "line_count"))


def stored_line_count(store, settings, namespace: str) -> int:
    return sum(_block_rows(store, settings, namespace, "line_count"))
