"""CassandraStore._send against the driver's own back-pressure (ConnectionBusy), the driver faked."""

from __future__ import annotations

import pytest
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionBusy

import common.store as store_module
from common.settings import Settings
from common.store import CassandraStore, StoreUnavailable

BUSY = NoHostAvailable("Unable to complete the operation against any hosts",
                       {"127.0.0.1:9042": ConnectionBusy("Connection 127.0.0.1:9042 is overloaded")})


def fake_driver(monkeypatch, answers):
    """execute_concurrent answering from `answers` (one list of errors-or-None per call); the
    statements of each call are recorded."""
    calls = []

    def execute_concurrent(session, statements, **_):
        calls.append([statement for statement, _ in statements])
        errors = answers.pop(0)
        return [(error is None, error) for error in errors]

    monkeypatch.setattr(store_module, "execute_concurrent", execute_concurrent)
    monkeypatch.setattr(store_module, "CLIENT_BUSY_PAUSE_SECONDS", 0)
    return calls


def test_requests_the_driver_refused_as_overloaded_are_sent_again_alone(monkeypatch):
    calls = fake_driver(monkeypatch, [[None, BUSY, None], [None]])
    CassandraStore(Settings())._send(None, [("a", (), None), ("b", (), None), ("c", (), None)])
    assert calls == [["a", "b", "c"], ["b"]]


def test_a_driver_that_stays_overloaded_is_an_outage(monkeypatch):
    fake_driver(monkeypatch, [[BUSY]] * (store_module.CLIENT_BUSY_ROUNDS + 1))
    with pytest.raises(StoreUnavailable, match="overloaded"):
        CassandraStore(Settings())._send(None, [("a", (), None)])
