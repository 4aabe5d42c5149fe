"""GET /query: lines of a container, a pod or a namespace over a time range, in pages.

The seed's request (namespace, pod_name, container_name, start_time[, end_time]) answers as it
did: {"log_rows": [{"time", "log"}]}, oldest first. Added: limit, direction, cursor, filters,
whole-pod and whole-namespace scope, and NDJSON or text output chosen by Accept.
"""

from __future__ import annotations

import time

import falcon

from api import log_output
from api.errors import unavailable
from api.query_params import QueryParamError, parse_log_query, single_values
from common.log_search import PageEnd, paginate, read_lines
from common.settings import Settings
from common.store import CassandraStore, StoreUnavailable
from common.timestamps import now_ns

# Rows a partition read fetches per round trip when nothing bounds the answer more tightly.
_PAGE_SIZE = 20_000


def bad_parameter(error: QueryParamError) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title=f"Invalid parameter '{error.param}'", description=error.detail)


def output_of(req: falcon.Request) -> str:
    """json (the default, and for */*), ndjson or text, from the Accept header."""
    preferred = req.client_prefers(list(log_output.OUTPUTS))
    return log_output.OUTPUTS.get(preferred or "application/json", "json")


class QueryResource:
    def __init__(self, settings: Settings, store: CassandraStore):
        self._settings = settings
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        s = self._settings
        try:
            query = parse_log_query(single_values(req.params), now_ns(), s.query_max_range_seconds)
        except QueryParamError as error:
            raise bad_parameter(error) from None
        output = output_of(req)
        max_rows, max_rows_name = (
            (s.query_max_rows, "QUERY_MAX_ROWS") if output == "json"
            else (s.query_max_stream_rows, "QUERY_MAX_STREAM_ROWS")
        )
        if query.limit is not None and query.limit <= max_rows:
            limit, limit_reason = query.limit, "limit"
        else:
            limit, limit_reason = max_rows, "max_rows"
        keep = query.line_filter.predicate()
        page_size = min(limit + 1, _PAGE_SIZE) if keep is None else _PAGE_SIZE
        end = PageEnd()
        lines = paginate(
            read_lines(self._store, query.scope, query.start_ns, query.end_ns,
                       bucket_seconds=s.cassandra_bucket_seconds, backward=query.backward,
                       after=query.after, page_size=page_size),
            end, limit=limit, limit_reason=limit_reason, keep=keep,
            max_scan=s.query_max_scan_rows, deadline=time.monotonic() + s.query_timeout_seconds,
        )
        caps = {
            "max_rows": f"{max_rows_name}={max_rows}",
            "max_scan": str(s.query_max_scan_rows),
            "timeout": f"QUERY_TIMEOUT_SECONDS={s.query_timeout_seconds:g}",
        }
        try:
            if output == "json":
                resp.data = log_output.json_document(lines, end, query.scope, query.backward, caps)
                resp.content_type = falcon.MEDIA_JSON
            elif output == "ndjson":
                resp.stream = log_output.ndjson_chunks(lines, end, query.scope, query.backward, caps)
                resp.content_type = log_output.MEDIA_NDJSON
            else:
                resp.stream = log_output.text_chunks(lines, end, query.scope, query.timestamps, caps)
                resp.content_type = log_output.MEDIA_TEXT
        except StoreUnavailable as error:
            raise unavailable("Cassandra", str(error), s.retry_after_seconds) from None
