"""Scenario 4: the API SIGKILLed under load, five times, and restarted each time.

Senders keep posting throughout. A request cut off by the kill gets no answer, so its sender posts
the same batch again (as fluent-bit does) until it gets a 2xx. Every record that got a 2xx lands,
once: a batch queued by the killed API and then again by its successor is written to the same keys.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import with_changes
from tests.faults import processes
from tests.faults.ledger import Ledger
from tests.faults.load import Senders
from tests.integration.pipeline import build_pipeline, unique
from tests.integration.redis_server import free_port
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 5
SENDERS, BATCH_SIZE, INTERVAL = 4, 500, 0.05  # as fast as the API answers: kills land mid-request
ACKS_BETWEEN_KILLS = 10  # batches acknowledged by each API before it is killed


def test_api_killed_under_load_loses_no_acknowledged_record_and_stores_none_twice(
        integration_settings, real_store, tmp_path):
    settings = with_changes(integration_settings, queue_name=unique("api-killed"))
    pipeline = build_pipeline(settings, real_store)
    real_store.connect()  # the schema exists before the worker starts
    port, metrics_port = free_port(), free_port()
    worker = processes.start("worker", settings, tmp_path / "worker.log", WORKER_METRICS_PORT=str(metrics_port))
    api = processes.start_api(settings, tmp_path / "api.log", port)
    namespace, ledger = unique("api-killed"), Ledger()
    senders = Senders(port, namespace, ledger, threads=SENDERS, batch_size=BATCH_SIZE, interval=INTERVAL,
                      give_up_after=60)
    downtimes = []
    try:
        senders.start()
        for _ in range(KILLS):
            acknowledged = len(ledger.acknowledged)
            wait_for(lambda: len(ledger.acknowledged) >= acknowledged + ACKS_BETWEEN_KILLS * BATCH_SIZE,
                     timeout=30, what="the API to acknowledge batches")
            killed_at = time.monotonic()
            processes.kill(api)
            api = processes.start_api(settings, tmp_path / "api.log", port)
            downtimes.append(time.monotonic() - killed_at)
        acknowledged = len(ledger.acknowledged)
        wait_for(lambda: len(ledger.acknowledged) >= acknowledged + ACKS_BETWEEN_KILLS * BATCH_SIZE,
                 timeout=30, what="the last API to acknowledge batches")
    finally:
        senders.stop()
        processes.stop(api)
    try:
        wait_for(lambda: pipeline.queue.unwritten_batches() == 0, timeout=60, interval=0.2,
                 what="every batch to be written")
        rows_written = processes.metric(metrics_port, "logserver_worker_rows_written_total")
    finally:
        processes.stop(worker)

    result = ledger.reconcile(real_store, namespace)
    statuses = senders.statuses()
    print(f"\n[scenario 4] kills={KILLS} {result} posts={sum(statuses.values())} 2xx={statuses[200]} "
          f"no_answer={statuses[0]} 503s={statuses[503]} rows_queued_twice={rows_written - result.acknowledged:.0f} "
          f"api_down_s=max {max(downtimes):.1f} "
          f"mean {sum(downtimes) / len(downtimes):.1f} failed_jobs={pipeline.queue.status().failed}")

    assert statuses[0] >= KILLS, "the kills cut off requests"
    assert set(statuses) <= {0, 200}
    assert senders.abandoned_batches == 0
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged == result.sent
    assert pipeline.queue.status().failed == 0
