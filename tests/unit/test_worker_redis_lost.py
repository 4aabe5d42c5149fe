"""workers.runner: a worker whose Redis went away starts again on a new client; a stop request ends it."""

from __future__ import annotations

import redis

from common.settings import Settings
from workers import runner


class QuittingWorker:
    """Stands in for RQ's worker: `work()` returns (or raises) as RQ's does when its loop ends."""

    def __init__(self, connection, stop_asked: bool, raises: Exception | None = None):
        self.connection, self.stop_asked, self.raises = connection, stop_asked, raises
        self.store_config_error = None

    def work(self, **_):
        if self.raises is not None:
            raise self.raises


def run_with(monkeypatch, outcomes: list[tuple[bool, Exception | None]]) -> tuple[list, list[float]]:
    built, pauses, clients = [], [], iter(range(100))
    monkeypatch.setattr(runner, "connect_redis", lambda settings: next(clients))
    def build(settings, connection, store, metrics):
        stop_asked, raises = outcomes[len(built)]
        built.append(QuittingWorker(connection, stop_asked, raises))
        if isinstance(raises, redis.ConnectionError) and stop_asked is None:  # RQ's constructor calls Redis
            raise raises
        return built[-1]

    monkeypatch.setattr(runner, "build_worker", build)
    monkeypatch.setattr(runner.time, "sleep", pauses.append)
    last = runner._work_until_stopped(Settings(), store=None, metrics=None)
    assert last is built[-1]
    return built, pauses


def test_a_worker_that_lost_redis_is_started_again_on_a_new_client(monkeypatch):
    built, pauses = run_with(monkeypatch, [(False, None), (False, redis.ConnectionError("gone")), (True, None)])
    assert [worker.connection for worker in built] == [0, 1, 2]
    assert pauses == [0.5, 1.0]


def test_a_stop_request_ends_the_worker_without_reconnecting(monkeypatch):
    built, pauses = run_with(monkeypatch, [(True, None)])
    assert len(built) == 1 and pauses == []


def test_a_worker_that_cannot_even_register_while_redis_is_gone_is_tried_again(monkeypatch):
    built, pauses = run_with(monkeypatch, [(None, redis.ConnectionError("refused")), (True, None)])
    assert len(built) == 2 and pauses == [0.5]
