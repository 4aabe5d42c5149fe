"""Scenarios on a three-node cluster (replication factor 3), writes and reads at LOCAL_QUORUM (2 of 3).

1. One node SIGKILLed under load, then restarted: ingest goes on, queries keep answering, and every
   acknowledged line is read back at LOCAL_QUORUM after the restart. That read does not rely on
   hints: a write acknowledged by 2 replicas and a read from 2 always share one.
2. Two nodes SIGKILLed: writes are Unavailable, workers back off without spending RQ retries, the
   API queues to its high-water mark then answers 503; restarted, the backlog drains, nothing lost.
3. One node SIGSTOPped for 30 s (it answers nothing, but its connections stay open), then SIGCONT:
   nothing acknowledged is lost, and the requests timing out on it do not pile up threads in the
   worker or the API.

The cluster is the one `make cluster-up` runs (scripts/cassandra-cluster.sh), started here if down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.queue import PAYLOAD_KEY_PREFIX
from common.store import CassandraStore, StoreUnavailable
from tests.conftest import with_changes
from tests.faults.ledger import Ledger
from tests.faults.load import BASE_NS
from tests.faults.service import service_under_load
from tests.integration.pipeline import unique
from tests.store_reads import stored_lines
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cassandra-cluster.sh"
HOSTS, CQL_PORT = ("127.0.0.1", "127.0.0.2", "127.0.0.3"), 9142
KILLED_NODE = 2  # not 127.0.0.1, the first contact point (see the report on the driver's control connection)
OUTAGE_SECONDS = 30
HIGH_WATER_MARK = 40  # batches: reached about 3 s into a write outage at 16 batches/s
# Scenario 1 is about Cassandra: a 503 there must come from the store side. On a shared disk, three
# nodes restarting can stall Redis's fsync (appendfsync always) past the 1 s default socket timeout,
# which the API rightly answers with 503 (once seen in CI: 4 POSTs in the same instant); a longer
# timeout keeps that unrelated stall out of this scenario's verdict.
ONE_NODE_ENV = {"REDIS_TIMEOUT_SECONDS": "5"}
OUTAGE_ENV = {"QUEUE_HIGH_WATER_MARK": str(HIGH_WATER_MARK), "JOB_RETRY_INTERVALS": "0,0,0",
              "RETRY_AFTER_SECONDS": "1"}  # a worker spending retries on the outage would fail jobs at once


def cluster(command: str, *args: str, timeout: float = 360, check: bool = True) -> subprocess.CompletedProcess:
    """Run scripts/cassandra-cluster.sh, printing its progress; fail the test if it fails (if `check`)."""
    started = time.monotonic()
    result = subprocess.run([str(SCRIPT), command, *args], env={**os.environ, "PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=timeout)
    if command not in ("pid", "status"):
        print(result.stdout, end="", flush=True)
        print(f"[cluster test] cassandra-cluster.sh {command} took {time.monotonic() - started:.1f}s", flush=True)
    if check and result.returncode != 0:
        pytest.fail(f"cassandra-cluster.sh {command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def cassandra_cluster():
    """The three-node cluster, up; a cluster that cannot start fails the test, never skips it.
    Stopped afterwards unless it was up before (`make cluster-up`)."""
    was_up = cluster("status", check=False).returncode == 0
    cluster("up")
    yield HOSTS
    if not was_up:
        cluster("down")


@pytest.fixture
def cluster_settings(integration_settings, cassandra_cluster):
    return with_changes(
        integration_settings, cassandra_hosts=cassandra_cluster, cassandra_port=CQL_PORT,
        cassandra_keyspace=unique("kil_cluster").replace("-", "_"), queue_name=unique("cluster"),
        cassandra_replication_strategy="NetworkTopologyStrategy",
        cassandra_replication_factors={"datacenter1": 3},
        cassandra_consistency="LOCAL_QUORUM", cassandra_local_dc="datacenter1",
    )


def kill_nodes(*nodes: int) -> float:
    for node in nodes:
        os.kill(int(cluster("pid", str(node)).stdout), signal.SIGKILL)
    print(f"\n[cluster test] SIGKILLed node(s) {', '.join(map(str, nodes))}", flush=True)
    return time.monotonic()


def reconcile_and_drop(ledger: Ledger, store: CassandraStore, namespace: str, keyspace: str):
    result = ledger.reconcile(store, namespace)  # at LOCAL_QUORUM, with all three nodes up
    if result.missing:
        # Diagnostics only (the test still fails on the first result): a missing line that a later
        # read finds is a read artifact of the restart; one that stays missing was never stored.
        time.sleep(10)
        print(f"[cluster test] lines missing; the same reconciliation 10 s later: {ledger.reconcile(store, namespace)}",
              flush=True)
    store.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    store.close()
    return result


def test_one_node_killed_under_load_at_local_quorum_loses_nothing_and_queries_keep_answering(
        cluster_settings, tmp_path):
    settings = cluster_settings
    queries = {"answered": 0, "failed": 0}
    with service_under_load(settings, tmp_path, warm_up_batches=20, give_up_after=OUTAGE_SECONDS + 240,
                            **ONE_NODE_ENV) as load:
        store, queue, senders, ledger, namespace = load.store, load.queue, load.senders, load.ledger, load.namespace
        acknowledged_before = len(ledger.acknowledged)
        killed_at = kill_nodes(KILLED_NODE)
        while time.monotonic() - killed_at < OUTAGE_SECONDS:  # one node down: ingest and queries go on
            try:
                stored_lines(store, namespace, "sender-0", "app", BASE_NS, BASE_NS + 3600 * 10**9,
                             bucket_seconds=store.bucket_seconds)
                queries["answered"] += 1
            except StoreUnavailable:
                queries["failed"] += 1
            time.sleep(1)
        acknowledged_during = len(ledger.acknowledged) - acknowledged_before
        cluster("up")  # restarts the killed node and waits until all three see each other up
        back_at = time.monotonic()
        time.sleep(2)  # some load after the restart, before the senders finish
    failed_jobs = queue.status().failed
    result = reconcile_and_drop(ledger, store, namespace, settings.cassandra_keyspace)
    during = senders.statuses(killed_at, back_at)
    print(f"[cluster test] LEDGER {result} acknowledged_with_a_node_down={acknowledged_during} "
          f"answers_with_a_node_down={dict(during)} queries_answered={queries['answered']} "
          f"queries_failed={queries['failed']} down_and_restart={back_at - killed_at:.1f}s failed_jobs={failed_jobs}",
          flush=True)

    assert acknowledged_during > 0, "ingest went on with one node down"
    assert set(during) == {200}, "every POST with one node down got 2xx"
    assert queries["failed"] == 0 and queries["answered"] > 0, "queries kept answering at LOCAL_QUORUM"
    assert failed_jobs == 0
    assert senders.abandoned_batches == 0
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged > 0


def test_two_nodes_killed_queue_to_the_high_water_mark_then_503_and_the_backlog_drains_losing_nothing(
        cluster_settings, tmp_path):
    settings = with_changes(cluster_settings, queue_high_water_mark=HIGH_WATER_MARK, job_retry_intervals=(0, 0, 0))
    failed_counts, backlog = [], 0
    with service_under_load(settings, tmp_path, warm_up_batches=20, give_up_after=OUTAGE_SECONDS + 240,
                            **OUTAGE_ENV) as load:
        store, queue, senders, ledger, namespace = load.store, load.queue, load.senders, load.ledger, load.namespace
        killed_at = kill_nodes(2, 3)
        while time.monotonic() - killed_at < OUTAGE_SECONDS:  # writes Unavailable: the queue fills
            failed_counts.append(queue.status().failed)
            backlog = max(backlog, queue.unwritten_batches())
            time.sleep(1)
        cluster("up")
        back_at = time.monotonic()
        redis = load.redis
        queued = set(redis.scan_iter(match=f"{PAYLOAD_KEY_PREFIX}{settings.queue_name}:*"))
        wait_for(lambda: not any(redis.exists(key) for key in queued), timeout=120, interval=0.5,
                 what="the outage's backlog to be written")
        drained = time.monotonic() - back_at
        time.sleep(2)
    failed_counts.append(queue.status().failed)
    result = reconcile_and_drop(ledger, store, namespace, settings.cassandra_keyspace)
    during = senders.statuses(killed_at, back_at)
    print(f"[cluster test] LEDGER {result} answers_with_two_nodes_down={dict(during)} largest_backlog={backlog} "
          f"down_and_restart={back_at - killed_at:.1f}s drained_after_restart={drained:.1f}s "
          f"failed_jobs={max(failed_counts)}", flush=True)

    assert during[503] > 0, "503 once the queue passed its high-water mark"
    assert backlog >= HIGH_WATER_MARK, "the API queued up to the high-water mark"
    assert set(senders.statuses()) <= {200, 503}, "every POST got 2xx or 503, never an error or no answer"
    assert all(a.retry_after for a in senders.answers if a.status == 503), "every 503 says when to retry"
    assert max(failed_counts) == 0, "no batch spent its retries on the outage"
    assert senders.abandoned_batches == 0
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged > 0


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for pid {pid}")


THREAD_GROWTH_ALLOWED = 8  # the driver's reconnection and a few request threads, not one per timeout


def test_one_node_stopped_for_30_s_loses_nothing_and_timeouts_do_not_pile_up_threads(cluster_settings, tmp_path):
    settings = cluster_settings
    with service_under_load(settings, tmp_path, warm_up_batches=20, give_up_after=OUTAGE_SECONDS + 240) as load:
        store, queue, senders, ledger, namespace = load.store, load.queue, load.senders, load.ledger, load.namespace
        before = {"worker": thread_count(load.worker.pid), "api": thread_count(load.api.pid)}
        most = dict(before)
        pid = int(cluster("pid", str(KILLED_NODE)).stdout)
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        print(f"\n[cluster test] SIGSTOPped node {KILLED_NODE}", flush=True)
        try:
            while time.monotonic() - stopped_at < OUTAGE_SECONDS:
                for name, process in (("worker", load.worker), ("api", load.api)):
                    most[name] = max(most[name], thread_count(process.pid))
                time.sleep(0.5)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        time.sleep(2)
    failed_jobs = queue.status().failed
    result = reconcile_and_drop(ledger, store, namespace, settings.cassandra_keyspace)
    during = senders.statuses(stopped_at, resumed_at)
    print(f"[cluster test] LEDGER {result} answers_with_a_node_stopped={dict(during)} threads_before={before} "
          f"threads_most={most} failed_jobs={failed_jobs}", flush=True)

    assert set(senders.statuses()) <= {200, 503}, "every POST got 2xx or 503, never an error or no answer"
    assert all(most[name] - before[name] <= THREAD_GROWTH_ALLOWED for name in before), (before, most)
    assert senders.abandoned_batches == 0
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged > 0
