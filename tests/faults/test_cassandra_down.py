"""Scenario 2: Cassandra down for a minute under steady load.

A private Cassandra node (the shared one on :9042 is never stopped) is stopped for 60 s while
senders keep posting. The API keeps answering: 2xx while the queue has room, 503 + Retry-After once
it holds QUEUE_HIGH_WATER_MARK batches. The worker waits for Cassandra instead of spending its
retries, so nothing reaches the failed registry, and once Cassandra is back every acknowledged
record lands exactly once.
"""

from __future__ import annotations

import time

import pytest

from common.queue import PAYLOAD_KEY_PREFIX
from tests.conftest import with_changes
from tests.faults.cassandra_node import CassandraNode
from tests.faults.service import service_under_load
from tests.integration.pipeline import unique
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_SECONDS = 60
HIGH_WATER_MARK = 40  # batches: reached about 3 s into the outage at 16 batches/s
RETRY_INTERVALS = "0,0,0"  # a worker spending retries on the outage would fill the failed registry at once
RECOVERY_LIMIT_SECONDS = 45  # the worker's longest pause between pings (10 s) + the driver's reconnect (5 s), with room
LONGEST_ANSWER_SECONDS = 2.0


@pytest.fixture
def private_cassandra(tmp_path):
    node = CassandraNode(tmp_path / "cassandra")
    try:
        node.start()
        yield node
    finally:
        node.stop()


def test_cassandra_down_for_a_minute_under_load_loses_nothing_and_spends_no_retries(
        integration_settings, private_cassandra, tmp_path):
    node = private_cassandra
    settings = with_changes(integration_settings, cassandra_port=node.port, queue_name=unique("cassandra-down"),
                            queue_high_water_mark=HIGH_WATER_MARK, job_retry_intervals=(0, 0, 0))
    env = {"QUEUE_HIGH_WATER_MARK": str(HIGH_WATER_MARK), "JOB_RETRY_INTERVALS": RETRY_INTERVALS,
           "RETRY_AFTER_SECONDS": "1"}
    failed_counts = []
    with service_under_load(settings, tmp_path, warm_up_batches=40, give_up_after=OUTAGE_SECONDS + 240,
                            **env) as load:
        store, redis, queue, senders, ledger, namespace = (load.store, load.redis, load.queue, load.senders,
                                                           load.ledger, load.namespace)
        assert queue.unwritten_batches() < 40, "the worker writes before the outage"

        outage_began = time.monotonic()
        node.stop()
        while time.monotonic() - outage_began < OUTAGE_SECONDS:  # the outage itself: load goes on
            failed_counts.append(queue.status().failed)
            time.sleep(1)
        node.start()
        back_at = time.monotonic()
        backlog = {key for key in redis.scan_iter(match=f"{PAYLOAD_KEY_PREFIX}{settings.queue_name}:*")}
        wait_for(lambda: not any(redis.exists(key) for key in backlog), timeout=RECOVERY_LIMIT_SECONDS + 60,
                 interval=0.5, what="the outage's backlog to be written")
        recovery = time.monotonic() - back_at
        time.sleep(2)  # some load after the recovery, before the senders finish
    failed_counts.append(queue.status().failed)

    result = ledger.reconcile(store, namespace)
    store.close()
    during = senders.answers_between(outage_began, back_at)
    statuses_during = senders.statuses(outage_began, back_at)
    first_503 = min(a.at for a in during if a.status == 503) - outage_began
    print(f"\n[scenario 2] {result} backlog_batches={len(backlog)} "
          f"answers_during_outage={dict(statuses_during)} 503s={senders.statuses()[503]} "
          f"first_503_after={first_503:.1f}s longest_answer_during_outage={max(a.seconds for a in during):.2f}s "
          f"outage={back_at - outage_began:.0f}s recovery={recovery:.1f}s failed_jobs={max(failed_counts)}")

    assert statuses_during[200] > 0, "2xx while the queue had room"
    assert statuses_during[503] > 0, "503 once the queue passed its high-water mark"
    assert set(senders.statuses()) <= {200, 503}, "every POST got 2xx or 503, never an error or no answer"
    assert all(a.retry_after for a in senders.answers if a.status == 503), "every 503 says when to retry"
    assert max(a.seconds for a in during) < LONGEST_ANSWER_SECONDS
    assert max(failed_counts) == 0, "no batch spent its retries on the outage"
    assert senders.abandoned_batches == 0
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged > 0
    assert recovery < RECOVERY_LIMIT_SECONDS
