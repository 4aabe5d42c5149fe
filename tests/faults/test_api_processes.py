"""API_PROCESSES=2: the real console script, one port served by two forked API processes under the
supervisor (api/supervisor.py), on the real Redis and Cassandra.

Which process serves a connection is the kernel's choice. To know it, a test SIGSTOPs the other
one: a stopped process accepts nothing, so every new connection goes to the one left running.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from tests.conftest import with_changes
from tests.faults import processes
from tests.faults.ledger import Ledger
from tests.faults.load import Senders
from tests.integration.pipeline import build_pipeline, unique
from tests.integration.redis_server import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

READY_200 = 'logserver_http_requests_total{method="GET",path="/ready",status="200"}'
WRITE_200 = 'logserver_http_requests_total{method="POST",path="/write",status="200"}'
SENDERS, BATCH_SIZE, INTERVAL = 4, 200, 0.05


@pytest.fixture
def two_processes(integration_settings, tmp_path):
    """(supervisor, port, log path) of an API with API_PROCESSES=2, once both processes run."""
    port, log_path = free_port(), tmp_path / "api.log"
    settings = with_changes(integration_settings, queue_name=unique("api-processes"))
    supervisor = processes.start_api(settings, log_path, port, API_PROCESSES="2", LOG_LEVEL="INFO")
    wait_for(lambda: len(processes.children(supervisor.pid)) == 2, timeout=30, what="two API processes")
    yield supervisor, port, log_path, settings
    processes.stop(supervisor)


@contextlib.contextmanager
def stopped(pid: int):
    """`pid` SIGSTOPped (it accepts no connection) for the block's duration."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def get_ready(port: int, times: int) -> None:
    for _ in range(times):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection each
        connection.request("GET", "/ready")
        assert connection.getresponse().status == 200
        connection.close()


def test_metrics_count_every_request_once_whichever_process_served_it_or_answers(two_processes):
    supervisor, port, _, _ = two_processes
    first, second = processes.children(supervisor.pid)
    before = processes.metric(port, READY_200)  # start_api's own probes

    with stopped(second):
        get_ready(port, 7)  # all served by `first`
    with stopped(first):
        get_ready(port, 5)  # all served by `second`
        answered_by_second = processes.metric(port, READY_200)
    with stopped(second):
        answered_by_first = processes.metric(port, READY_200)

    assert answered_by_first == answered_by_second == before + 12


@pytest.mark.faults
def test_a_process_killed_under_load_is_replaced_while_the_port_answers_and_its_counts_are_kept(
        two_processes, real_store, tmp_path):
    supervisor, port, _, settings = two_processes
    pipeline = build_pipeline(settings, real_store)
    metrics_port = free_port()
    worker = processes.start("worker", settings, tmp_path / "worker.log", WORKER_METRICS_PORT=str(metrics_port))
    victim, survivor = processes.children(supervisor.pid)
    namespace, ledger = unique("api-processes"), Ledger()
    senders = Senders(port, namespace, ledger, threads=SENDERS, batch_size=BATCH_SIZE, interval=INTERVAL,
                      give_up_after=60)
    try:
        with stopped(survivor):  # every sender connects to the victim
            senders.start()
            wait_for(lambda: len(ledger.acknowledged) >= 10 * BATCH_SIZE, timeout=30,
                     what="the victim to acknowledge batches")
        served_by_victim = processes.metric(port, WRITE_200)
        processes.kill_pid(victim)
        replacement = wait_for(lambda: [pid for pid in processes.children(supervisor.pid) if pid != survivor],
                               timeout=10, what="a new API process")
        acknowledged = len(ledger.acknowledged)
        wait_for(lambda: len(ledger.acknowledged) >= acknowledged + 20 * BATCH_SIZE, timeout=30,
                 what="batches acknowledged after the kill")
    finally:
        senders.stop()
    try:
        counted = processes.metric(port, WRITE_200)
        wait_for(lambda: pipeline.queue.unwritten_batches() == 0, timeout=60, interval=0.2,
                 what="every batch to be written")
    finally:
        processes.stop(worker)

    statuses = senders.statuses()
    result = ledger.reconcile(real_store, namespace)
    print(f"\n[api processes] victim served {served_by_victim:.0f} POSTs before its SIGKILL; {result} "
          f"posts={sum(statuses.values())} 2xx={statuses[200]} no_answer={statuses[0]} counted_2xx={counted:.0f}")

    assert served_by_victim >= 10 and replacement[0] != victim
    assert set(statuses) <= {0, 200} and statuses[0] <= SENDERS, "only the victim's connections were cut"
    # The victim's counts are kept: every 2xx is counted, plus at most the answers it counted and never sent.
    assert statuses[200] <= counted <= statuses[200] + statuses[0]
    assert (result.missing, result.unexpected, result.duplicates) == (0, 0, 0)
    assert result.stored == result.acknowledged == result.sent


def test_sigterm_to_the_supervisor_stops_every_process_and_removes_the_metrics_folder(two_processes):
    supervisor, _, log_path, _ = two_processes
    children = processes.children(supervisor.pid)
    metrics_dir = Path(re.search(r"metrics_dir=(\S+)", log_path.read_text()).group(1))
    assert metrics_dir.is_dir()

    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(timeout=20) == 0
    assert not any(processes.exists(pid) for pid in children)
    assert not metrics_dir.exists()


@pytest.mark.faults
def test_a_sigkilled_supervisor_takes_its_processes_with_it_and_frees_the_port(two_processes):
    supervisor, port, _, _ = two_processes
    children = processes.children(supervisor.pid)

    processes.kill(supervisor)

    wait_for(lambda: not any(processes.exists(pid) for pid in children), timeout=10,
             what="the API processes to exit with their supervisor")
    def port_free() -> bool:  # a process forked just before the kill is not in `children`
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) != 0

    wait_for(port_free, timeout=10, what="nothing to listen on the port any more")
