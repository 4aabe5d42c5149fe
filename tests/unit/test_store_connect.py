"""Connecting never leaks a driver Cluster, whichever step fails, and settings that disagree with
the schema are remembered: no Cluster is built for them again."""

from __future__ import annotations

import types

import pytest
from cassandra.cluster import NoHostAvailable

from common.settings import Settings
from common.store import CassandraStore, StoreConfigError, StoreUnavailable

CONFIG_ERROR = StoreConfigError("keyspace k stores logs in 86400-second buckets; Set CASSANDRA_BUCKET_SECONDS=86400")


class FakeCluster:
    built: list[FakeCluster] = []
    fail_connect: Exception | None = None

    def __init__(self, **kwargs):
        self.is_shutdown = False
        FakeCluster.built.append(self)

    def connect(self):
        if FakeCluster.fail_connect is not None:
            raise FakeCluster.fail_connect
        return FakeSession()

    def shutdown(self):
        self.is_shutdown = True


class FakeSession:
    fail_prepare: Exception | None = None

    def prepare(self, cql):
        raise FakeSession.fail_prepare


@pytest.fixture
def store(monkeypatch):
    monkeypatch.setattr("common.store.Cluster", FakeCluster)
    monkeypatch.setattr(FakeCluster, "built", [])
    monkeypatch.setattr(CassandraStore, "_ensure_schema", lambda self, session: None)
    return CassandraStore(Settings())


def fail_schema(monkeypatch, error):
    def ensure_schema(self, session):
        raise error
    monkeypatch.setattr(CassandraStore, "_ensure_schema", ensure_schema)


@pytest.mark.parametrize("step, error, raised", [
    ("connect", NoHostAvailable("Unable to connect to any servers", {}), StoreUnavailable),
    ("schema", CONFIG_ERROR, StoreConfigError),
    ("schema", RuntimeError("a bug"), RuntimeError),
    ("prepare", RuntimeError("a bug"), RuntimeError),
])
def test_a_failed_connect_shuts_its_cluster_down(store, monkeypatch, step, error, raised):
    if step == "connect":
        monkeypatch.setattr(FakeCluster, "fail_connect", error)
    elif step == "schema":
        fail_schema(monkeypatch, error)
    else:
        monkeypatch.setattr(FakeSession, "fail_prepare", error)
    with pytest.raises(raised):
        store.connect()
    assert [cluster.is_shutdown for cluster in FakeCluster.built] == [True]


def test_a_config_error_is_remembered_and_no_cluster_built_for_it_again(store, monkeypatch):
    fail_schema(monkeypatch, CONFIG_ERROR)
    for _ in range(3):
        with pytest.raises(StoreConfigError, match="Set CASSANDRA_BUCKET_SECONDS=86400"):
            store.ping(timeout=1)
    assert len(FakeCluster.built) == 1


def test_an_outage_is_not_remembered_the_next_attempt_connects_again(store, monkeypatch):
    monkeypatch.setattr(FakeCluster, "fail_connect", NoHostAvailable("Unable to connect to any servers", {}))
    with pytest.raises(StoreUnavailable):
        store.connect()
    monkeypatch.setattr(FakeCluster, "fail_connect", None)
    monkeypatch.setattr(FakeSession, "fail_prepare", None)
    monkeypatch.setattr(FakeSession, "prepare", lambda self, cql: types.SimpleNamespace(query_string=cql))
    store.connect()
    assert [cluster.is_shutdown for cluster in FakeCluster.built] == [True, False]
