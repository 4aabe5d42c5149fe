"""GET /namespaces, /pods, /containers: who had lines over a time range (default: the last day),
answered from the index the workers keep as they write, never by scanning lines."""

from __future__ import annotations

from collections.abc import Callable

import falcon
import msgspec

from api.query_params import DEFAULT_DISCOVERY_SECONDS, parse_range, parse_scope, single_values
from common.log_store import LogStore
from common.query_plan import plan_slices
from common.settings import Settings
from common.timestamps import now_ns

_json = msgspec.json.Encoder()


class _DiscoveryResource:
    """One index listing: parse the range (and scope), read each bucket's entries, answer the union."""

    key: str

    def __init__(self, settings: Settings, store: LogStore):
        self._settings = settings
        self._store = store

    def _names(self, params: dict[str, str], buckets: list[int]) -> set[str]:
        raise NotImplementedError

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        s = self._settings
        params = single_values(req.params)
        start_ns, end_ns = parse_range(params, now_ns(), s.query_max_range_seconds,
                                       default_seconds=DEFAULT_DISCOVERY_SECONDS)
        buckets = [bucket.bucket for bucket in plan_slices(start_ns, end_ns, s.cassandra_bucket_seconds)]
        names = self._names(params, buckets)
        resp.data = _json.encode({self.key: sorted(names)})
        resp.content_type = falcon.MEDIA_JSON


def _union(per_bucket: list[list], pick: Callable = lambda entry: entry) -> set[str]:
    return {pick(entry) for entries in per_bucket for entry in entries}


class NamespacesResource(_DiscoveryResource):
    key = "namespaces"

    def _names(self, params, buckets):
        return _union(self._store.namespaces_in_buckets(buckets))


class PodsResource(_DiscoveryResource):
    key = "pods"

    def _names(self, params, buckets):
        scope = parse_scope(params)
        return _union(self._store.containers_in_buckets(scope.namespace, None, buckets), lambda e: e[0])


class ContainersResource(_DiscoveryResource):
    key = "containers"

    def _names(self, params, buckets):
        scope = parse_scope(params, pod_required=True)
        return _union(self._store.containers_in_buckets(scope.namespace, scope.pod_name, buckets),
                      lambda e: e[1])
