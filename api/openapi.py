"""The API's OpenAPI 3.1 description, built in code and served at GET /openapi.json (no auth).

It is the contract the fuzz test (tests/integration/test_openapi_fuzz.py) holds the server to, and
tests/unit/test_openapi.py checks that it names exactly the routes the app registers.
"""

from __future__ import annotations

import falcon
import msgspec

from api.loki.openapi import loki_paths
from common.records import MAX_NAME_CHARACTERS
from common.settings import Settings

OPENAPI_PATH = "/openapi.json"
# Kept here rather than imported from api/loki_push.py: the document is built without the resources.
LOKI_PUSH_PATH = "/loki/api/v1/push"

_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARACTERS}
_RFC3339 = {"type": "string", "format": "date-time", "description": "RFC 3339, up to nanoseconds"}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def openapi_document(settings: Settings) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kube-insight-logserver",
            "version": "1",
            "description": (
                "Kubernetes pod logs from fluent-bit: POST /write queues batches in Redis, workers store "
                "them in Cassandra, the read endpoints query them. Every error body is "
                '{"message", "detail"}. 4xx: the request can never succeed as sent; 503 (with Retry-After '
                "when ingesting): a dependency is unavailable, retry later."
            ),
        },
        "paths": {
            "/write": {"post": _write(settings), "get": _health()},
            LOKI_PUSH_PATH: {"post": _loki_push(settings)},
            "/ready": {"get": _ready()},
            "/query": {"get": _query(settings)},
            "/namespaces": {"get": _names("namespaces", "Namespaces with lines in the time range.", [])},
            "/pods": {"get": _names("pods", "Pods of a namespace with lines in the time range.",
                                    [_param("namespace", _NAME, required=True)])},
            "/containers": {"get": _names("containers", "Containers of a pod with lines in the time range.",
                                          [_param("namespace", _NAME, required=True),
                                           _param("pod_name", _NAME, required=True)])},
            "/tail": {"get": _tail()},
            "/metrics": {"get": _metrics()},
            OPENAPI_PATH: {"get": _openapi()},
            **loki_paths(_READS_BUSY, _unauthorized("QUERY_TOKEN"), _retry_later("Cassandra unavailable: retry")),
            "/": {"get": _ui_index()},
            "/ui/{file}": {"get": _ui_file()},
        },
        "components": {"schemas": _schemas(), "securitySchemes": _security_schemes()},
    }


class OpenApiResource:
    def __init__(self, settings: Settings):
        self._body = msgspec.json.encode(openapi_document(settings))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self._body
        resp.content_type = falcon.MEDIA_JSON


# --- operations ---

def _write(settings: Settings) -> dict:
    batch = {"$ref": "#/components/schemas/Batch"}
    return {
        "summary": "Ingest a fluent-bit batch",
        "description": (
            "Valid records are queued (Redis acknowledged them before the answer); invalid ones (wrong "
            "type, missing field, a string that is not UTF-8, a time out of range) are counted, the first "
            "10 listed, and skipped: a mixed batch keeps every valid record. A `log` "
            f"longer than MAX_LINE_BYTES ({settings.max_line_bytes} bytes) is truncated to that many "
            "UTF-8 bytes, ending in ' [truncated by kube-insight-logserver]', not rejected. fluent-bit "
            "drops a chunk on 4xx (except 408/429) and retries it on 5xx."
        ),
        "security": [{}, {"ingestToken": []}],
        "parameters": [
            _header("Content-Encoding", {"type": "string", "enum": ["gzip", "x-gzip", "identity"]},
                    "gzip (fluent-bit's `compress gzip`): inflated up to MAX_BODY_BYTES, past it 413"),
        ],
        "requestBody": {
            "required": True,
            "description": f"At most MAX_BODY_BYTES ({settings.max_body_bytes} bytes), inflated.",
            "content": {
                "application/json": {"schema": {**batch, "description": (
                    "fluent-bit `Format json` (an array of records) or `json_stream` (records back to back).")}},
                "application/x-ndjson": {"schema": {**batch, "description": (
                    "fluent-bit `Format json_lines`: each record of the array on a line of its own; a line "
                    "holding a JSON value that is no valid record is one invalid record.")}},
                "application/msgpack": {"schema": {**batch, "description": (
                    "fluent-bit `Format msgpack`: a stream of [[EventTime, metadata], record] events, "
                    "[time, record] pairs or plain records, or one array of them. The event's time stamps "
                    "a record that has neither `time` nor the date key.")}},
            },
        },
        "responses": {
            "200": _json("The valid records are queued", {"$ref": "#/components/schemas/WriteSummary"}),
            "400": _error("Not JSON, msgpack or gzip, not records, nested too deeply (~1,000 levels), or every "
                          "record invalid"),
            "401": _unauthorized("INGEST_TOKEN"),
            "413": {
                "description": (
                    "Body, or gzip body inflated, above MAX_BODY_BYTES. A raw body over the limit is refused "
                    "by waitress before the app reads it, with its own plain-text answer"
                ),
                "content": {"application/json": {"schema": _ERROR_REF}, "text/plain": {"schema": {"type": "string"}}},
            },
            "503": _retry_later("Redis unavailable or full, or the queue at QUEUE_HIGH_WATER_MARK: retry"),
        },
    }


def _loki_push(settings: Settings) -> dict:
    return {
        "summary": "Ingest a Loki push request (fluent-bit's `loki` output, Promtail, Grafana Alloy)",
        "description": (
            "Each stream's namespace, pod and container labels (LOKI_NAMESPACE_LABEL, LOKI_POD_LABEL, "
            "LOKI_CONTAINER_LABEL) name the rows, its stream label (LOKI_STREAM_LABEL) their stream; other "
            "labels and the entries' structured metadata are kept in the row's labels. An entry that cannot "
            "be stored (its stream lacks a name label, a bad timestamp) is rejected alone: the others are "
            "queued and the answer is 400 with Loki's message. A line longer than MAX_LINE_BYTES "
            f"({settings.max_line_bytes} bytes) is truncated, not rejected. Promtail and Alloy retry 429 and "
            "5xx and drop a batch on any other status; fluent-bit drops on 400 and retries everything else. "
            "With TENANT_ID set, X-Scope-OrgID must name it."
        ),
        "security": [{}, {"ingestToken": []}, {"ingestBasic": []}],
        "parameters": [
            _header("Content-Encoding", {"type": "string", "enum": ["gzip", "x-gzip", "identity"]},
                    "gzip: inflated up to MAX_BODY_BYTES, past it 413"),
            _header("X-Scope-OrgID", {"type": "string"},
                    "The tenant: must equal TENANT_ID when that is set (401 without it, 403 for another)"),
        ],
        "requestBody": {
            "required": True,
            "description": f"At most MAX_BODY_BYTES ({settings.max_body_bytes} bytes), inflated.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/LokiPush"}},
                "application/x-protobuf": {"schema": {
                    "type": "string", "format": "binary",
                    "description": (
                        "A logproto.PushRequest (common/proto/push.proto) in snappy block format, as Promtail "
                        "and Alloy send it; also taken without a Content-Type, as Loki does"
                    ),
                }},
            },
        },
        "responses": {
            "204": {"description": "Every entry is queued (Redis acknowledged it)"},
            "400": _error(
                "Not a push request, or some entries rejected: the others are queued, and detail is Loki's "
                "message, one line per rejected entry (the first 10), then `total ignored: N out of M`"),
            "401": {**_unauthorized("INGEST_TOKEN"), "description": (
                "INGEST_TOKEN is set and the request lacks it (as a bearer token or basic auth's password), or "
                "TENANT_ID is set and X-Scope-OrgID is missing")},
            "403": _error("X-Scope-OrgID names a tenant other than TENANT_ID"),
            "413": {
                "description": (
                    "Body above MAX_BODY_BYTES as sent, inflated (gzip), or as its snappy header declares. A raw "
                    "body over the limit is refused by waitress before the app reads it, with its own plain-text "
                    "answer"
                ),
                "content": {"application/json": {"schema": _ERROR_REF}, "text/plain": {"schema": {"type": "string"}}},
            },
            "415": _error("Content-Type neither application/json nor application/x-protobuf"),
            "429": _retry_later("The queue is at QUEUE_HIGH_WATER_MARK: retry later"),
            "503": _retry_later("Redis unavailable or full: retry"),
        },
    }


def _health() -> dict:
    health = {
        "type": "object", "required": ["healthy", "detail"],
        "properties": {"healthy": {"type": "boolean"}, "detail": {"type": "string"}},
    }
    return {
        "summary": "Health probe: Redis and Cassandra both answer (within 2 s)",
        "responses": {"200": _json("Healthy", health), "503": _json("A dependency failed: named in detail", health)},
    }


def _ready() -> dict:
    ready = {
        "type": "object", "required": ["ready", "detail"],
        "properties": {"ready": {"type": "boolean"}, "detail": {"type": "string"}},
    }
    return {
        "summary": "Ingest readiness: Redis answers (Cassandra is not needed to accept logs)",
        "responses": {"200": _json("Ready", ready), "503": _json("Redis unavailable", ready)},
    }


def _query(settings: Settings) -> dict:
    row = {
        "type": "object", "required": ["time", "log"],
        "properties": {
            "time": {"type": "string", "description": "RFC 3339 UTC, nanoseconds, trailing zeros trimmed"},
            "log": {"type": "string"},
            "container": {"type": "string"},
            "pod": {"type": "string"},
        },
    }
    result = {
        "type": "object", "required": ["log_rows"],
        "properties": {
            "log_rows": {"type": "array", "items": row},
            "next_cursor": {"type": "string", "description": "Pass back as `cursor` for the next page"},
            "truncated": {"type": "boolean"},
            "detail": {"type": "string"},
        },
    }
    return {
        "summary": "Lines of a namespace, pod or container over a time range",
        "description": (
            "Oldest first (newest first with direction=backward), across bucket and day borders. The range "
            f"is inclusive and at most QUERY_MAX_RANGE_SECONDS ({settings.query_max_range_seconds} s). "
            "The answer's type follows Accept."
        ),
        "security": [{}, {"queryToken": []}],
        "parameters": [
            _param("namespace", _NAME, required=True),
            _param("start_time", _RFC3339, required=True),
            _param("end_time", _RFC3339, "Defaults to now; after start_time"),
            _param("pod_name", _NAME),
            _param("container_name", _NAME, "Needs pod_name"),
            _param("limit", {"type": "integer", "minimum": 1}, "At most this many lines, then next_cursor"),
            _param("direction", {"type": "string", "enum": ["forward", "backward"]}),
            _param("cursor", {"type": "string", "maxLength": 2048}, "Opaque: a previous answer's next_cursor"),
            *_filters(),
            _param("timestamps", {"type": "boolean"}, "text/plain only: prefix each line with its time"),
        ],
        "responses": {
            "200": {
                "description": "The lines",
                "content": {
                    "application/json": {"schema": result},
                    "application/x-ndjson": {"schema": {
                        "type": "string",
                        "description": (
                            'One row object per line. The last line may be {"next_cursor": ...}, or '
                            '{"error": {"message", "detail"}} when Cassandra failed after the first rows'
                        ),
                    }},
                    "text/plain": {"schema": {"type": "string", "description": "The lines as logged"}},
                },
            },
            "400": _error("A bad parameter, named in message"),
            "401": _unauthorized("QUERY_TOKEN"),
            "429": _READS_BUSY,
            "503": _retry_later("Cassandra unavailable: retry"),
        },
    }


def _names(key: str, summary: str, scope: list[dict]) -> dict:
    listing = {
        "type": "object", "required": [key],
        "properties": {key: {"type": "array", "items": {"type": "string"}}},
    }
    return {
        "summary": summary,
        "security": [{}, {"queryToken": []}],
        "parameters": [
            *scope,
            _param("start_time", _RFC3339, "Defaults to a day before end_time"),
            _param("end_time", _RFC3339, "Defaults to now"),
        ],
        "responses": {
            "200": _json(f"The {key}, sorted", listing),
            "400": _error("A bad parameter, named in message"),
            "401": _unauthorized("QUERY_TOKEN"),
            "429": _READS_BUSY,
            "503": _retry_later("Cassandra unavailable: retry"),
        },
    }


def _tail() -> dict:
    return {
        "summary": "Follow a pod's lines as they are stored, like `kubectl logs -f`",
        "security": [{}, {"queryToken": []}],
        "parameters": [
            _param("namespace", _NAME, required=True),
            _param("pod_name", _NAME, required=True),
            _param("container_name", _NAME),
            _param("since", _RFC3339, "Start from this time (at most QUERY_MAX_RANGE_SECONDS ago) instead of now"),
            *_filters(),
        ],
        "responses": {
            "200": {
                "description": (
                    "Streamed by Accept until TAIL_MAX_SECONDS, then a last end line/event. Heartbeats "
                    "while idle; an error line/event per Cassandra outage."
                ),
                "content": {
                    "application/x-ndjson": {"schema": {
                        "type": "string",
                        "description": (
                            'The default. One row per line ({"time", "log"}, plus "container" for a whole '
                            'pod), an empty line as heartbeat, {"error": {"message", "detail"}} and, last, '
                            '{"end": {"reason", "detail"}}'
                        ),
                    }},
                    "text/event-stream": {"schema": {
                        "type": "string",
                        "description": "`line` events (data: a row), `: keepalive`, `error` and `end` events",
                    }},
                },
            },
            "400": _error("A bad parameter, named in message"),
            "401": _unauthorized("QUERY_TOKEN"),
            "429": _READS_BUSY,
            "503": _retry_later("Cassandra unavailable: retry"),
        },
    }


def _metrics() -> dict:
    return {
        "summary": "Prometheus exposition",
        "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }


def _openapi() -> dict:
    return {
        "summary": "This document",
        "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
    }


def _ui_index() -> dict:
    return {
        "summary": "The browser log explorer (its page; it reads the logs through this API)",
        "responses": {
            "200": {"description": "index.html", "content": {"text/html": {"schema": {"type": "string"}}}},
            "304": {"description": "Not modified (If-None-Match matched the ETag)"},
        },
    }


def _ui_file() -> dict:
    return {
        "summary": "A static file of the browser log explorer (a fixed list: api/ui.py's UI_FILES)",
        "parameters": [{"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {
                "description": "The file, with Content-Security-Policy, ETag and Cache-Control",
                "content": {media: {"schema": {"type": "string"}}
                            for media in ("text/html", "text/javascript", "text/css")},
            },
            "304": {"description": "Not modified (If-None-Match matched the ETag)"},
            "404": _error("Not one of the UI's files"),
        },
    }


# --- building blocks ---

def _filters() -> list[dict]:
    return [
        _param("contains", {"type": "string", "minLength": 1}, "Only lines containing this text"),
        _param("regex", {"type": "string", "minLength": 1, "maxLength": 256},
               "Only lines matching this RE2 pattern (no backreferences or look-around)"),
        _param("stream", {"type": "string", "enum": ["stdout", "stderr"]}),
    ]


def _param(name: str, schema: dict, description: str = "", *, required: bool = False) -> dict:
    param = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        param["description"] = description
    return param


def _header(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(description, _ERROR_REF)


def _unauthorized(token: str) -> dict:
    return {
        **_error(f"{token} is set and the request lacks 'Authorization: Bearer <{token}>'"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }


def _retry_later(description: str) -> dict:
    return {
        **_error(description),
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
    }


_READS_BUSY = _retry_later(
    "Every thread reads may hold (half of API_THREADS, shared by /query, /tail and discovery) is busy: retry")


def _schemas() -> dict:
    kubernetes = {
        "type": "object",
        "required": ["namespace_name", "pod_name", "container_name"],
        "properties": {
            "namespace_name": _NAME,
            "pod_name": _NAME,
            "container_name": _NAME,
            "host": {"type": "string"},
            "pod_id": {"type": "string"},
            "docker_id": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    record = {
        "type": "object",
        "description": (
            "One record as fluent-bit's kubernetes filter shapes it. It also needs `time` or the date key "
            "(FLUENT_BIT_DATE_KEY, `date` by default), and its time must lie in 1970-01-01 .. 2262-04-11; "
            "a record without one is rejected (listed in errors). Other keys are ignored."
        ),
        "required": ["kubernetes"],
        "properties": {
            "kubernetes": kubernetes,
            "log": {"type": "string", "description": "May be empty; truncated past MAX_LINE_BYTES"},
            "stream": {"type": "string"},
            "time": {**_RFC3339, "description": "RFC 3339 up to nanoseconds; wins over the date key"},
            "date": {
                "type": ["number", "string"],
                "description": (
                    "Epoch seconds (float or integer), epoch milliseconds (integers >= 10^11), "
                    "ISO 8601, or 'YYYY-MM-DD hh:mm:ss.ffffff' (UTC)"
                ),
            },
            # Any value: one that is not an offset (Merge_Log's own `offset`) is ignored, not rejected.
            "offset": {
                "description": (
                    "The tail input's Offset_Key (key FLUENT_BIT_OFFSET_KEY): the line's byte offset in its file, "
                    "an integer 0 .. 2^64-1; a line with one is identified by container, file, time and offset. "
                    "Any other value is ignored"
                ),
            },
            "log_file": {"description": "The tail input's Path_Key (key FLUENT_BIT_PATH_KEY): the line's file"},
        },
    }
    summary = {
        "type": "object",
        "required": ["accepted", "rejected", "truncated_lines", "errors"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "truncated_lines": {"type": "integer", "minimum": 0},
            "errors": {
                "type": "array", "maxItems": 10, "description": "The first 10 invalid records",
                "items": {
                    "type": "object", "required": ["index", "reason"],
                    "properties": {"index": {"type": "integer", "minimum": 0}, "reason": {"type": "string"}},
                },
            },
        },
    }
    error = {
        "type": "object",
        "required": ["message", "detail"],
        "properties": {"message": {"type": "string"}, "detail": {"type": "string"}},
    }
    loki_push = {
        "type": "object",
        "required": ["streams"],
        "description": "Loki's JSON push request, as fluent-bit's `loki` output sends it",
        "properties": {
            "streams": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["stream", "values"],
                    "properties": {
                        "stream": {"type": "object", "additionalProperties": {"type": "string"},
                                   "description": "The stream's labels"},
                        "values": {
                            "type": "array",
                            "description": (
                                '["<unix epoch in nanoseconds>", "<line>"], or with a third element: '
                                "the entry's structured metadata (an object of strings)"
                            ),
                            "items": {
                                "type": "array", "minItems": 2, "maxItems": 3,
                                "prefixItems": [
                                    {"type": "string", "pattern": "^-?[0-9]+$"},
                                    {"type": "string"},
                                    {"type": "object", "additionalProperties": {"type": "string"}},
                                ],
                            },
                        },
                    },
                },
            },
        },
    }
    return {
        "LokiPush": loki_push,
        "Record": record,
        "Batch": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
        "WriteSummary": summary,
        "Error": error,
    }


def _security_schemes() -> dict:
    return {
        "ingestToken": {"type": "http", "scheme": "bearer", "description": "INGEST_TOKEN, when set"},
        "queryToken": {"type": "http", "scheme": "bearer", "description": "QUERY_TOKEN, when set"},
        "ingestBasic": {"type": "http", "scheme": "basic",
                        "description": "INGEST_TOKEN as the password, any user name (Promtail's and Alloy's basic_auth)"},
    }
