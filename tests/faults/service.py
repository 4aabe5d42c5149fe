"""The service under steady load for fault tests: a worker and an API process on a test's settings,
with sender threads posting to the API and a ledger of what it acknowledged."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis as redis_client

from common.queue import BatchQueue, connect_redis
from common.settings import Settings
from common.store import CassandraStore
from tests.faults import processes
from tests.faults.ledger import Ledger
from tests.faults.load import Senders
from tests.integration.pipeline import unique
from tests.integration.redis_server import free_port
from tests.waiting import wait_for

SENDERS, BATCH_SIZE, INTERVAL = 4, 200, 0.25  # 3,200 records/s


@dataclasses.dataclass(frozen=True)
class UnderLoad:
    store: CassandraStore
    redis: redis_client.Redis
    queue: BatchQueue
    senders: Senders
    ledger: Ledger
    namespace: str
    worker: subprocess.Popen
    api: subprocess.Popen


@contextlib.contextmanager
def service_under_load(settings: Settings, tmp_path: Path, *, warm_up_batches: int, give_up_after: float,
                       **env: str) -> Iterator[UnderLoad]:
    """Start the worker and the API, then the senders; yield once `warm_up_batches` batches were
    acknowledged. On leaving: stop the senders, wait until every batch is written, stop the processes."""
    store = CassandraStore(settings)
    store.connect()  # the schema exists before the worker and the API start
    redis = connect_redis(settings)
    queue = BatchQueue(redis, settings)
    port = free_port()
    worker = processes.start("worker", settings, tmp_path / "worker.log", **env)
    try:
        api = processes.start_api(settings, tmp_path / "api.log", port, **env)
    except BaseException:
        processes.stop(worker)
        raise
    namespace, ledger = unique("load"), Ledger()
    senders = Senders(port, namespace, ledger, threads=SENDERS, batch_size=BATCH_SIZE, interval=INTERVAL,
                      give_up_after=give_up_after)
    try:
        try:
            senders.start()
            wait_for(lambda: len(ledger.acknowledged) >= warm_up_batches * BATCH_SIZE, timeout=60, interval=0.1,
                     what="load before the fault")
            yield UnderLoad(store, redis, queue, senders, ledger, namespace, worker, api)
        finally:
            senders.stop()
        # Generous: at RF 3 on a shared 2-core machine a backlog built during a slow restart drains slowly.
        wait_for(lambda: queue.unwritten_batches() == 0, timeout=300, interval=0.1, what="every batch to be written")
    finally:
        processes.stop(api)
        processes.stop(worker)
