"""The Falcon application, built by a factory from injected services."""

from __future__ import annotations

import falcon

from api.auth import BearerAuth
from api.discovery import ContainersResource, NamespacesResource, PodsResource
from api.errors import register_error_handlers, serialize_error
from api.health import HealthResource
from api.loki.read import (BuildInfoResource, FormatQueryResource, InstantQueryResource, LabelsResource, LabelValuesResource,
                           QueryRangeResource, SeriesResource)
from api.loki.tail import LokiTailResource
from api.ingest import Ingest
from api.loki_push import PUSH_PATH, LokiPushResource
from api.observability import MetricsResource, RequestMetrics
from api.openapi import OPENAPI_PATH, OpenApiResource
from api.profiling import CpuProfileResource, HeapProfileResource, start_heap_tracing
from api.query import QueryResource
from api.read_slots import ReadSlots
from api.tail import TailResource
from api.tenancy import TenantCheck
from api.ui import UI_PREFIX, UiResource
from api.write import WriteResource
from common.metrics import ApiMetrics
from common.queue import BatchQueue, connect_redis
from common.settings import Settings
from common.log_store import LogStore
from common.store import CassandraStore

# Loki's read routes; those in LOKI_POST_PATHS also answer POST with a form body, as Loki's do.
LOKI_QUERY_PATH = "/loki/api/v1/query"
LOKI_QUERY_RANGE_PATH = "/loki/api/v1/query_range"
LOKI_LABELS_PATH = "/loki/api/v1/labels"
LOKI_LABEL_VALUES_PATH = "/loki/api/v1/label/{name}/values"
LOKI_SERIES_PATH = "/loki/api/v1/series"
LOKI_BUILDINFO_PATH = "/loki/api/v1/status/buildinfo"
LOKI_TAIL_PATH = "/loki/api/v1/tail"  # a WebSocket (api/loki/tail.py)
LOKI_FORMAT_QUERY_PATH = "/loki/api/v1/format_query"
LOKI_POST_PATHS = (LOKI_QUERY_PATH, LOKI_QUERY_RANGE_PATH, LOKI_LABELS_PATH, LOKI_LABEL_VALUES_PATH, LOKI_SERIES_PATH)
# Everything that reads logs needs QUERY_TOKEN when one is set, and shares the reads' threads.
QUERY_PATHS = ("/query", "/tail", "/namespaces", "/pods", "/containers", *LOKI_POST_PATHS, LOKI_TAIL_PATH)
# Loki's API lives under this prefix (X-Scope-OrgID is checked there, see api/tenancy.py).
LOKI_PREFIX = "/loki/"
# Profiles show stacks and allocations (log lines among them): as secret as the logs.
PROFILING_PATHS = ("/debug/pprof/profile", "/debug/pprof/heap")


def create_app(settings: Settings, queue: BatchQueue, store: LogStore, metrics: ApiMetrics) -> falcon.App:
    auth = BearerAuth({
        ("POST", "/write"): settings.ingest_token,
        ("POST", PUSH_PATH): settings.ingest_token,
        **{("GET", path): settings.query_token
           for path in QUERY_PATHS + PROFILING_PATHS + (LOKI_BUILDINFO_PATH, LOKI_FORMAT_QUERY_PATH)},
        **{("POST", path): settings.query_token for path in (*LOKI_POST_PATHS, LOKI_FORMAT_QUERY_PATH)},
    })
    app = falcon.App(middleware=[RequestMetrics(metrics), TenantCheck(settings.tenant_id, LOKI_PREFIX), auth,
                                 ReadSlots(settings, QUERY_PATHS)])
    app.set_error_serializer(serialize_error)
    register_error_handlers(app, settings.retry_after_seconds)
    health = HealthResource(queue, store)
    ingest = Ingest(queue, metrics)
    app.add_route("/write", _WriteRoute(WriteResource(settings, ingest), health))
    app.add_route(PUSH_PATH, LokiPushResource(settings, ingest))
    app.add_route("/ready", health, suffix="ready")
    app.add_route("/query", QueryResource(settings, store))
    app.add_route("/tail", TailResource(settings, store))
    app.add_route("/namespaces", NamespacesResource(settings, store))
    app.add_route("/pods", PodsResource(settings, store))
    app.add_route("/containers", ContainersResource(settings, store))
    app.add_route(LOKI_QUERY_RANGE_PATH, QueryRangeResource(settings, store))
    app.add_route(LOKI_QUERY_PATH, InstantQueryResource(settings, store))
    app.add_route(LOKI_LABELS_PATH, LabelsResource(settings, store))
    app.add_route(LOKI_LABEL_VALUES_PATH, LabelValuesResource(settings, store))
    app.add_route(LOKI_SERIES_PATH, SeriesResource(settings, store))
    app.add_route(LOKI_BUILDINFO_PATH, BuildInfoResource())
    app.add_route(LOKI_TAIL_PATH, LokiTailResource(settings, store))
    app.add_route(LOKI_FORMAT_QUERY_PATH, FormatQueryResource())  # reads nothing: no read slot
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route(OPENAPI_PATH, OpenApiResource(settings))
    ui = UiResource()  # the browser log explorer: static files, no data, so no token
    app.add_route("/", ui)
    app.add_route(UI_PREFIX + "{file}", ui, suffix="file")
    if settings.enable_profiling:
        start_heap_tracing()
        cpu_path, heap_path = PROFILING_PATHS
        app.add_route(cpu_path, CpuProfileResource())
        app.add_route(heap_path, HeapProfileResource())
    return app


class _WriteRoute:
    """The seed serves its health probe on GET /write: one path, two resources (Falcon routes a
    path to one object). Ingest depends on the queue alone."""

    def __init__(self, ingest: WriteResource, health: HealthResource):
        self._ingest = ingest
        self._health = health

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._ingest.on_post(req, resp)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._health.on_get(req, resp)


def build_app(settings: Settings, metrics_dir: str | None = None) -> tuple[falcon.App, CassandraStore]:
    """The app wired to the real Redis and Cassandra named by `settings` (Cassandra connects lazily);
    `metrics_dir`: the supervisor's folder of every API process's metrics (common/metrics.py)."""
    queue = BatchQueue(connect_redis(settings), settings)
    store = CassandraStore(settings)
    return create_app(settings, queue, store, ApiMetrics(queue.status, metrics_dir)), store
