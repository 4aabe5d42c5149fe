"""Scenario: workers SIGKILLed mid-batch, ten times in a row. Every acknowledged record lands exactly
once, and the interrupted batches are recovered with nobody stepping in, within two minutes.

The workers write two batches per write (WORKER_BATCHES_PER_WRITE=2): each one killed leaves its
own job in the started registry and a claimed batch in a claim list that nobody renews."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from rq.registry import StartedJobRegistry

from tests.faults import processes
from tests.faults.ledger import Ledger
from tests.integration.pipeline import build_pipeline, unique
from tests.integration.redis_server import free_port
from tests.records import fluent_bit_record
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 10
BATCHES_PER_WRITE = 2
BATCHES = KILLS * BATCHES_PER_WRITE + 4
ROWS_PER_BATCH = 2500  # 5,000 rows a write, a few hundred ms of writing: time to be killed in the middle
RECOVERY_LIMIT_SECONDS = 120


def test_workers_killed_mid_batch_lose_nothing_and_recover_by_themselves(integration_settings, real_store, tmp_path):
    pipeline = build_pipeline(integration_settings, real_store)
    settings = integration_settings
    namespace, ledger = unique("killed"), Ledger()
    base = 1_700_000_000 * 10**9
    for batch in range(BATCHES):
        pod = f"pod-{batch % 4}"
        rows = [(pod, "app", base + batch * ROWS_PER_BATCH + i, f"batch {batch} line {i}") for i in range(ROWS_PER_BATCH)]
        records = [fluent_bit_record(namespace, p, c, time=ts, log=log, stream=None) for p, c, ts, log in rows]
        ledger.record(rows, pipeline.post(records).status_code)
    assert len(ledger.acknowledged) == BATCHES * ROWS_PER_BATCH

    started = StartedJobRegistry(queue=pipeline.queue.rq_queue)
    log_path = tmp_path / "workers.log"
    for kill in range(KILLS):
        worker = processes.start("worker", settings, log_path, WORKER_BATCHES_PER_WRITE=str(BATCHES_PER_WRITE))
        wait_for(lambda: started.count > kill, timeout=60, what=f"worker {kill} to start a batch")
        processes.kill(worker)
    last_kill = time.monotonic()
    assert started.count == KILLS, "each killed worker left its batch in the started registry"

    survivor = processes.start("worker", settings, log_path, WORKER_BATCHES_PER_WRITE=str(BATCHES_PER_WRITE))
    try:
        wait_for(lambda: pipeline.queue.unwritten_batches() == 0,
                 timeout=RECOVERY_LIMIT_SECONDS + 60, interval=0.5, what="every batch to be written")
        recovery = time.monotonic() - last_kill
    finally:
        processes.stop(survivor)

    result = ledger.reconcile(real_store, namespace)
    print(f"\n[worker-killed] kills={KILLS} {result} recovery_s={recovery:.1f} "
          f"failed_jobs={pipeline.queue.status().failed}")
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged
    assert pipeline.queue.status().failed == 0
    assert recovery < RECOVERY_LIMIT_SECONDS


def children_of(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid]


def port_is_free(port: int) -> bool:
    """True when a new worker could bind its metrics port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _parent(proc_dir: Path) -> int | None:
    try:
        return int(proc_dir.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_a_killed_worker_leaves_no_scheduler_behind_holding_its_metrics_port(integration_settings, tmp_path):
    port = free_port()
    worker = processes.start("worker", integration_settings, tmp_path / "worker.log", WORKER_METRICS_PORT=str(port))
    wait_for(lambda: children_of(worker.pid), timeout=30, interval=0.05, what="RQ to fork its scheduler")
    (scheduler,) = children_of(worker.pid)
    processes.kill(worker)
    wait_for(lambda: not Path(f"/proc/{scheduler}").exists() or "Z" in Path(f"/proc/{scheduler}/stat").read_text().split()[2],
             timeout=10, interval=0.05, what="the scheduler to die with its worker")
    assert port_is_free(port), f"port {port} still held after the worker was killed"
