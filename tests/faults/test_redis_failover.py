"""The Redis primary SIGKILLed under load, with a replica and three Sentinels (scripts/redis-ha.sh).

The API (REDIS_WAIT_REPLICAS=1) and a worker know Redis only through the Sentinels. The Sentinels
promote the replica; the killed node is started again and they make it the new primary's replica,
so WAIT can be met again. Senders keep posting throughout, and every batch that got a 2xx must be
stored, once.

RQ's worker loop quits when Redis goes away ("found an unhandled exception, quitting"); the
worker process starts a new one on a new client (workers/runner.py), which asks the Sentinels
again: the test asserts the worker process never exited.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from common.queue import BatchQueue, connect_redis
from tests.conftest import with_changes
from tests.faults import processes
from tests.faults.ledger import Ledger
from tests.faults.load import Senders
from tests.integration.pipeline import unique
from tests.integration.redis_ha import RedisHA
from tests.integration.redis_server import free_port
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SENDERS, BATCH_SIZE, INTERVAL = 2, 200, 0.1


def test_redis_primary_killed_under_load_fails_over_and_every_acknowledged_batch_is_stored_once(
        integration_settings, real_store, tmp_path):
    ha = RedisHA(tmp_path / "redis-ha")
    ha.run("up")
    settings = with_changes(integration_settings, queue_name=unique("failover"), redis_sentinels=ha.sentinels)
    through_sentinels = {"REDIS_SENTINELS": ha.sentinels_env, "REDIS_WAIT_REPLICAS": "1"}
    real_store.connect()  # the schema exists before the worker starts
    port, metrics_port = free_port(), free_port()
    worker = api = None
    namespace, ledger = unique("failover"), Ledger()
    senders = Senders(port, namespace, ledger, threads=SENDERS, batch_size=BATCH_SIZE, interval=INTERVAL,
                      give_up_after=90)
    try:
        worker = processes.start("worker", settings, tmp_path / "worker.log",
                                 WORKER_METRICS_PORT=str(metrics_port), **through_sentinels)
        api = processes.start_api(settings, tmp_path / "api.log", port, **through_sentinels)
        senders.start()
        wait_for(lambda: len(ledger.acknowledged) >= 10 * BATCH_SIZE, timeout=30, what="batches acknowledged")
        killed_at = time.monotonic()
        os.kill(ha.pid("primary"), signal.SIGKILL)
        wait_for(lambda: ha.master_port() == ha.replica_port, timeout=60, interval=0.2,
                 what="the Sentinels to promote the replica")
        promoted_after = time.monotonic() - killed_at
        ha.run("start-node", "primary")  # back, and made a replica of the new primary by the Sentinels
        acknowledged = len(ledger.acknowledged)
        wait_for(lambda: len(ledger.acknowledged) >= acknowledged + 10 * BATCH_SIZE, timeout=90,
                 what="batches acknowledged after the failover")
        resumed_after = time.monotonic() - killed_at
        senders.stop()
        worker_exited = worker.poll() is not None  # it must follow the new primary by itself
        queue = BatchQueue(connect_redis(settings), settings)
        wait_for(lambda: queue.unwritten_batches() == 0, timeout=120, interval=0.5, what="every batch written")
        failed = queue.status().failed
    finally:
        senders.stop()
        for process in (api, worker):
            if process is not None:
                processes.stop(process)
        ha.run("down")

    result = ledger.reconcile(real_store, namespace)
    statuses = senders.statuses()
    print(f"\n[redis failover] {result} posts={sum(statuses.values())} 2xx={statuses[200]} 503s={statuses[503]} "
          f"no_answer={statuses[0]} promoted_after_s={promoted_after:.1f} acks_resumed_after_s={resumed_after:.1f} "
          f"failed_jobs={failed} worker_exited={worker_exited}")

    assert not worker_exited, "the worker follows the promoted replica without a restart"
    assert senders.abandoned_batches == 0
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged == result.sent
    assert failed == 0
