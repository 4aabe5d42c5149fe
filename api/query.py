"""GET /query: one pod container's lines over a time range, oldest first (seed-compatible)."""

from __future__ import annotations

import falcon
import msgspec

from api.errors import unavailable
from api.query_params import QueryParamError, parse_log_query
from common.settings import Settings
from common.store import CassandraStore, StoreUnavailable
from common.timestamps import format_rfc3339_ns, now_ns

_json = msgspec.json.Encoder()


class QueryResource:
    def __init__(self, settings: Settings, store: CassandraStore):
        self._settings = settings
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            query = parse_log_query(req.params, now_ns(), self._settings.query_max_range_seconds)
        except QueryParamError as error:
            raise falcon.HTTPBadRequest(title=f"Invalid parameter '{error.param}'",
                                        description=error.detail) from None
        try:
            result = self._store.query(
                query.namespace, query.pod_name, query.container_name, query.start_ns, query.end_ns,
                self._settings.query_max_rows,
            )
        except StoreUnavailable as error:
            raise unavailable("Cassandra", str(error), self._settings.retry_after_seconds) from None
        document: dict = {"log_rows": [{"time": format_rfc3339_ns(ts), "log": line} for ts, line in result.rows]}
        if result.truncated:
            document["truncated"] = True
            document["detail"] = (
                f"more than {self._settings.query_max_rows} rows (QUERY_MAX_ROWS); "
                "narrow the time range, starting after the last row returned"
            )
        resp.data = _json.encode(document)
        resp.content_type = falcon.MEDIA_JSON
