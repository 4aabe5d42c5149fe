"""Steady load for fault tests: sender threads posting distinct batches over HTTP, as fluent-bit does.

Each sender posts a batch every `interval` seconds and keeps a batch until it gets a 2xx: a 503 is
retried after its Retry-After, a lost connection after a short pause. Only 2xx answers go into the
ledger as acknowledged. `stop()` lets every sender finish the batch it holds.
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import threading
import time

from bench.workload import post_write
from tests.faults.ledger import Ledger
from tests.records import fluent_bit_record

BASE_NS = 1_700_000_000 * 10**9
RECONNECT_PAUSE_SECONDS = 0.1


@dataclasses.dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when it arrived
    status: int  # 0: no HTTP answer (connection refused, reset or closed)
    retry_after: str | None
    seconds: float


class Senders:
    def __init__(self, port: int, namespace: str, ledger: Ledger, *, threads: int = 4, batch_size: int = 200,
                 interval: float = 0.25, give_up_after: float = 120.0):
        self._port, self._namespace, self._ledger = port, namespace, ledger
        self._batch_size, self._interval, self._give_up_after = batch_size, interval, give_up_after
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self.abandoned_batches = 0
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def start(self) -> "Senders":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self._give_up_after + 30)
            assert not thread.is_alive(), "a sender did not finish its batch"

    # --- what happened ---

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> collections.Counter:
        with self._lock:
            return collections.Counter(a.status for a in self.answers if since <= a.at < until)

    def answers_between(self, since: float, until: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if since <= a.at < until]

    # --- one sender ---

    def _run(self, sender: int) -> None:
        connection = None
        next_at = time.monotonic()
        batch = 0
        while not self._stopping.is_set():
            pause = next_at - time.monotonic()
            if pause > 0 and self._stopping.wait(pause):
                break
            next_at = max(next_at + self._interval, time.monotonic())
            rows = self._rows(sender, batch)
            connection = self._deliver(connection, rows)
            batch += 1
        if connection is not None:
            connection.close()

    def _rows(self, sender: int, batch: int) -> list[tuple[str, str, int, str]]:
        first = batch * self._batch_size
        return [(f"sender-{sender}", "app", BASE_NS + (first + i) * 1000, f"sender {sender} batch {batch} line {i}")
                for i in range(self._batch_size)]

    def _deliver(self, connection, rows) -> http.client.HTTPConnection | None:
        body = json.dumps([fluent_bit_record(self._namespace, pod, container, time=ts, log=log, stream=None)
                           for pod, container, ts, log in rows]).encode()
        deadline = time.monotonic() + self._give_up_after
        attempt = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            connection, response = post_write(connection, self._port, body)
            if response is None:
                self._note(Answer(time.monotonic(), 0, None, time.monotonic() - started))
                time.sleep(RECONNECT_PAUSE_SECONDS)
                continue
            retry_after = response.getheader("Retry-After")
            self._note(Answer(time.monotonic(), response.status, retry_after, time.monotonic() - started))
            self._ledger.record(rows, response.status, retry=attempt > 0)
            attempt += 1
            if 200 <= response.status < 300:
                return connection
            time.sleep(float(retry_after) if retry_after else RECONNECT_PAUSE_SECONDS)
        with self._lock:
            self.abandoned_batches += 1
        return connection

    def _note(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)
