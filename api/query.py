"""GET /query: lines of a container, a pod or a namespace over a time range, in pages.

The seed's request (namespace, pod_name, container_name, start_time[, end_time]) answers as it
did: {"log_rows": [{"time", "log"}]}, oldest first. Added: limit, direction, cursor, filters,
whole-pod and whole-namespace scope, and NDJSON or text output chosen by Accept.
"""

from __future__ import annotations

import time

import falcon

from api import log_output
from api.log_output import Caps, Output
from api.query_params import parse_log_query, single_values
from common.log_search import CutReason, PageEnd, paginate, read_lines
from common.log_store import LogStore
from common.settings import Settings
from common.timestamps import now_ns

# Rows a partition read fetches per round trip when nothing bounds the answer more tightly.
_PAGE_SIZE = 20_000


def output_of(req: falcon.Request) -> Output:
    """JSON (the default, and for */*), NDJSON or text, from the Accept header."""
    preferred = req.client_prefers(list(log_output.OUTPUTS))
    return log_output.OUTPUTS.get(preferred or falcon.MEDIA_JSON, Output.JSON)


class QueryResource:
    def __init__(self, settings: Settings, store: LogStore):
        self._settings = settings
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        s = self._settings
        query = parse_log_query(single_values(req.params), now_ns(), s.query_max_range_seconds)
        output = output_of(req)
        max_rows, max_rows_name = (
            (s.query_max_rows, "QUERY_MAX_ROWS") if output is Output.JSON
            else (s.query_max_stream_rows, "QUERY_MAX_STREAM_ROWS")
        )
        if query.limit is not None and query.limit <= max_rows:
            limit, limit_reason = query.limit, CutReason.LIMIT
        else:
            limit, limit_reason = max_rows, CutReason.MAX_ROWS
        keep = query.line_filter.predicate()
        page_size = min(limit + 1, _PAGE_SIZE) if keep is None else _PAGE_SIZE
        end = PageEnd()
        lines = paginate(
            read_lines(self._store, query.scope, query.start_ns, query.end_ns,
                       bucket_seconds=s.cassandra_bucket_seconds, direction=query.direction,
                       after=query.after, page_size=page_size),
            end, limit=limit, limit_reason=limit_reason, keep=keep,
            max_scan=s.query_max_scan_rows, deadline=time.monotonic() + s.query_timeout_seconds,
        )
        caps = Caps(max_rows=f"{max_rows_name}={max_rows}", max_scan=str(s.query_max_scan_rows),
                    timeout=f"QUERY_TIMEOUT_SECONDS={s.query_timeout_seconds:g}")
        # A store failure before the first line propagates from here: 503 (api/errors.py).
        if output is Output.JSON:
            resp.data = log_output.json_document(lines, end, query.scope, query.direction, caps)
            resp.content_type = falcon.MEDIA_JSON
        elif output is Output.NDJSON:
            resp.stream = log_output.ndjson_chunks(lines, end, query.scope, query.direction, caps)
            resp.content_type = log_output.MEDIA_NDJSON
        else:
            resp.stream = log_output.text_chunks(lines, end, query.scope, query.timestamps, caps)
            resp.content_type = log_output.MEDIA_TEXT
