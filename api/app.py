"""The Falcon application, built by a factory from injected services."""

from __future__ import annotations

import falcon

from api.auth import BearerAuth
from api.discovery import ContainersResource, NamespacesResource, PodsResource
from api.errors import handle_unexpected, serialize_error
from api.observability import MetricsResource, RequestMetrics
from api.openapi import OPENAPI_PATH, OpenApiResource
from api.profiling import CpuProfileResource, HeapProfileResource, start_heap_tracing
from api.query import QueryResource
from api.read_slots import ReadSlots
from api.tail import TailResource
from api.write import WriteResource
from common.metrics import ApiMetrics
from common.queue import BatchQueue, connect_redis
from common.settings import Settings
from common.store import CassandraStore

# Everything that reads logs needs QUERY_TOKEN when one is set, and shares the reads' threads.
QUERY_PATHS = ("/query", "/tail", "/namespaces", "/pods", "/containers")
# Profiles show stacks and allocations (log lines among them): as secret as the logs.
PROFILING_PATHS = ("/debug/pprof/profile", "/debug/pprof/heap")


def create_app(settings: Settings, queue: BatchQueue, store: CassandraStore, metrics: ApiMetrics) -> falcon.App:
    auth = BearerAuth({
        ("POST", "/write"): settings.ingest_token,
        **{("GET", path): settings.query_token for path in QUERY_PATHS + PROFILING_PATHS},
    })
    app = falcon.App(middleware=[RequestMetrics(metrics), auth, ReadSlots(settings, QUERY_PATHS)])
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    write = WriteResource(settings, queue, store, metrics)
    app.add_route("/write", write)
    app.add_route("/ready", write, suffix="ready")
    app.add_route("/query", QueryResource(settings, store))
    app.add_route("/tail", TailResource(settings, store))
    app.add_route("/namespaces", NamespacesResource(settings, store))
    app.add_route("/pods", PodsResource(settings, store))
    app.add_route("/containers", ContainersResource(settings, store))
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route(OPENAPI_PATH, OpenApiResource(settings))
    if settings.enable_profiling:
        start_heap_tracing()
        cpu_path, heap_path = PROFILING_PATHS
        app.add_route(cpu_path, CpuProfileResource())
        app.add_route(heap_path, HeapProfileResource())
    return app


def build_app(settings: Settings) -> tuple[falcon.App, CassandraStore]:
    """The app wired to the real Redis and Cassandra named by `settings` (Cassandra connects lazily)."""
    queue = BatchQueue(connect_redis(settings), settings)
    store = CassandraStore(settings)
    return create_app(settings, queue, store, ApiMetrics(queue.status)), store
