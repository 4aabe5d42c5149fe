"""REDIS_SENTINELS: the API and the queue find the Redis primary through Sentinel, on the Redis
primary, replica and three Sentinels that `scripts/redis-ha.sh up` starts (private ports and folder)."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request

import pytest
import redis

from common.queue import BatchQueue, connect_redis
from tests.conftest import with_changes
from tests.faults import processes
from tests.integration.pipeline import unique
from tests.integration.redis_ha import RedisHA
from tests.integration.redis_server import free_port
from tests.records import fluent_bit_record
from tests.store_reads import stored_lines

BASE_NS = 1_764_000_000 * 10**9

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_ha(tmp_path):
    ha = RedisHA(tmp_path / "redis-ha")
    ha.run("up")
    try:
        yield ha
    finally:
        ha.run("down")


def test_a_client_built_with_sentinels_talks_to_the_primary_they_name(integration_settings, redis_ha):
    client = connect_redis(with_changes(integration_settings, redis_sentinels=redis_ha.sentinels))

    assert client.info("replication")["role"] == "master"
    assert client.config_get("port")["port"] == str(redis_ha.primary_port)


def test_api_and_worker_started_with_sentinels_queue_on_the_primary_and_store_the_batch(
        integration_settings, real_store, redis_ha, tmp_path):
    primary, replica = redis_ha.primary_port, redis_ha.replica_port
    settings = with_changes(integration_settings, queue_name=unique("sentinel"),
                            redis_url="redis://127.0.0.1:1/0")  # the Sentinels' answer, never this host
    through_sentinels = {"REDIS_SENTINELS": redis_ha.sentinels_env}
    port, namespace = free_port(), unique("ns")
    api = processes.start_api(settings, tmp_path / "api.log", port, **through_sentinels)
    try:
        assert [post(port, namespace, n) for n in range(3)] == [(200, None)] * 3
    finally:
        processes.stop(api)

    assert redis.Redis(port=primary).wait(1, 5000) == 1  # the replica has caught up
    queued_on = {name: BatchQueue(redis.Redis(port=node), settings).rq_queue.count  # LLEN: a read
                 for name, node in (("primary", primary), ("replica", replica))}
    assert queued_on == {"primary": 3, "replica": 3}

    real_store.connect()  # the schema exists before the worker starts
    worker = processes.start("worker", settings, tmp_path / "worker.log", WORKER_BURST="true", **through_sentinels)
    assert worker.wait(timeout=60) == 0
    assert [log for _, log in stored_lines(real_store, namespace, "pod", "app", BASE_NS, BASE_NS + 10)] == [
        "line 0", "line 1", "line 2"]


def test_with_redis_wait_replicas_a_batch_the_replica_cannot_confirm_is_answered_503_not_acknowledged(
        integration_settings, redis_ha, tmp_path):
    settings = with_changes(integration_settings, queue_name=unique("sentinel-wait"))
    port, namespace = free_port(), unique("ns")
    api = processes.start_api(settings, tmp_path / "api.log", port, REDIS_WAIT_REPLICAS="1",
                              REDIS_SENTINELS=redis_ha.sentinels_env)
    replica_pid = redis_ha.pid("replica")
    try:
        confirmed = post(port, namespace, 0)
        os.kill(replica_pid, signal.SIGSTOP)
        try:
            unconfirmed = post(port, namespace, 1)
        finally:
            os.kill(replica_pid, signal.SIGCONT)
    finally:
        processes.stop(api)

    assert confirmed == (200, None)
    status, message = unconfirmed
    assert status == 503 and "0 of the 1 replica(s)" in message


def post(port: int, namespace: str, n: int) -> tuple[int, str | None]:
    """POST one record; (status, the error's detail or None)."""
    body = json.dumps([fluent_bit_record(namespace, "pod", "app", time=BASE_NS + n, log=f"line {n}")]).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/write", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["detail"]
