"""The supervisor of API_PROCESSES > 1 (api/supervisor.py): its back-off, its socket, and its
children (real forks of this process, serving nothing)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from api.supervisor import MAX_BACKOFF_SECONDS, Supervisor, listen, restart_delay
from tests.waiting import wait_for


def test_a_child_killed_once_is_replaced_at_once():
    assert restart_delay(1) == 0.0


def test_children_dying_young_in_a_row_are_replaced_after_a_doubling_pause():
    assert [restart_delay(n) for n in range(2, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_the_pause_of_a_crash_loop_is_bounded():
    assert restart_delay(50) == MAX_BACKOFF_SECONDS


def test_the_listening_socket_accepts_before_any_child_serves():
    sock = listen("127.0.0.1", 0)
    try:
        client = socket.create_connection(sock.getsockname(), timeout=2)  # queued in the backlog
        client.close()
    finally:
        sock.close()


@pytest.fixture
def supervising():
    """Run a Supervisor in this (the main) thread, `during(supervisor)` in another; SIGTERM to this
    process when `during` returns stops it."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}

    def run(supervisor: Supervisor, during) -> None:
        def drive() -> None:
            try:
                during(supervisor)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)

        driver = threading.Thread(target=drive)
        driver.start()
        supervisor.run()
        driver.join()

    yield run
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _idle() -> None:
    time.sleep(60)


def test_a_killed_child_is_replaced_and_sigterm_stops_every_child(supervising):
    exited: list[int] = []
    seen: dict[str, list[int]] = {}

    def during(supervisor: Supervisor) -> None:
        first = wait_for(lambda: len(supervisor.children) == 2 and supervisor.children, timeout=10)
        seen["first"] = list(first)
        os.kill(first[0], signal.SIGKILL)
        seen["then"] = list(wait_for(lambda: first[0] not in supervisor.children and len(supervisor.children) == 2
                                     and supervisor.children, timeout=10))

    supervisor = Supervisor(2, _idle, on_child_exit=exited.append)
    supervising(supervisor, during)

    assert seen["then"][0] == seen["first"][1] and seen["then"][1] not in seen["first"]
    assert sorted(exited) == sorted({*seen["first"], *seen["then"]})
    assert supervisor.children == []


def _crash() -> None:
    raise RuntimeError("cannot start")


def test_a_child_that_crashes_at_start_is_restarted_with_back_off_not_in_a_tight_loop(supervising):
    exited: list[int] = []

    def during(supervisor: Supervisor) -> None:
        time.sleep(1.6)  # the span measured: the pauses 0, 0.5 and 1 s fit in it, no more

    supervising(Supervisor(1, _crash, on_child_exit=exited.append), during)

    assert 2 <= len(exited) <= 4
