"""The OpenAPI description of Loki's read routes (api/loki/read.py), merged into api/openapi.py's."""

from __future__ import annotations

_TIME = {"type": "string", "description": "Nanoseconds since the epoch, seconds (10 digits or fewer, or with a "
                                          "fraction) or RFC 3339"}
_QUERY = {"type": "string", "minLength": 1, "maxLength": 65536, "description": "LogQL (docs/logql.md)"}
_SELECTOR = {"type": "string", "minLength": 1, "maxLength": 65536, "description": 'A stream selector, e.g. {app="web"}'}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _param(name: str, schema: dict, description: str = "", *, required: bool = False, where: str = "query") -> dict:
    param = {"name": name, "in": where, "required": required or where == "path", "schema": schema}
    if description:
        param["description"] = description
    return param


def _form(parameters: list[dict]) -> dict:
    """The same parameters as a form-encoded POST body, as Loki accepts them."""
    properties = {param["name"]: param["schema"] for param in parameters if param["in"] == "query"}
    required = [param["name"] for param in parameters if param["in"] == "query" and param["required"]]
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


def _answer(description: str, data: dict) -> dict:
    schema = {"type": "object", "required": ["status", "data"],
              "properties": {"status": {"const": "success"}, "data": data}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(busy: dict, unauthorized: dict, retry_later: dict) -> dict:
    return {
        "400": {"description": "A bad parameter or a LogQL construct this server refuses, named in detail; or a "
                               "query that would read past QUERY_MAX_SCAN_ROWS / QUERY_TIMEOUT_SECONDS",
                "content": {"application/json": {"schema": _ERROR_REF}}},
        "401": unauthorized,
        "429": busy,
        "503": retry_later,
    }


def _operation(summary: str, description: str, parameters: list[dict], ok: dict, errors: dict, post: bool,
               ok_status: str = "200"):
    get = {"summary": summary, "description": description, "security": [{}, {"queryToken": []}],
           "parameters": parameters, "responses": {ok_status: ok, **errors}}
    item = {"get": get}
    if post:
        path_params = [param for param in parameters if param["in"] == "path"]
        item["post"] = {**get, "parameters": path_params, "requestBody": _form(parameters)}
    return item


def loki_paths(busy: dict, unauthorized: dict, retry_later: dict) -> dict:
    errors = _errors(busy, unauthorized, retry_later)
    range_params = [_param("start", _TIME, "Inclusive; defaults to an hour before end"),
                    _param("end", _TIME, "Exclusive; defaults to now")]
    result = {"type": "object", "required": ["resultType", "result"],
              "properties": {"resultType": {"enum": ["streams", "matrix", "vector", "scalar"]}, "result": {},
                             "stats": {"type": "object"}}}
    strings = {"type": "array", "items": {"type": "string"}}
    index_params = [_param("start", _TIME, "Defaults to six hours before end"), _param("end", _TIME),
                    _param("query", _SELECTOR, "Only the streams it selects")]
    return {
        "/loki/api/v1/query_range": _operation(
            "Loki: lines (streams) or a metric (matrix) over a time range",
            "A log query answers at most `limit` lines, plus every other line of the last line's timestamp, so "
            "that a client paging by time neither loses nor repeats lines.",
            [_param("query", _QUERY, required=True), *range_params,
             _param("limit", {"type": "integer", "minimum": 1}, "Lines; default 100, at most QUERY_MAX_ROWS"),
             _param("direction", {"type": "string", "enum": ["forward", "backward", "FORWARD", "BACKWARD"]},
                    "Default backward (newest first)"),
             _param("step", {"type": "string"}, "Seconds or a duration (60000ms, 1m); default range/250")],
            _answer("Streams or a matrix", result), errors, post=True),
        "/loki/api/v1/query": _operation(
            "Loki: a metric query at one time (vector; a number: scalar)",
            "Log queries are refused (400), as Loki 3.2 refuses them. Grafana's Save & test sends vector(1)+vector(1).",
            [_param("query", _QUERY, required=True), _param("time", _TIME, "Defaults to now"),
             _param("limit", {"type": "integer", "minimum": 1}),
             _param("direction", {"type": "string", "enum": ["forward", "backward", "FORWARD", "BACKWARD"]})],
            _answer("A vector or a scalar", result), errors, post=True),
        "/loki/api/v1/labels": _operation(
            "Loki: label names with lines in the range", "Read from the series index, never from the lines.",
            index_params, _answer("Label names, sorted", strings), errors, post=True),
        "/loki/api/v1/label/{name}/values": _operation(
            "Loki: one label's values in the range", "Read from the series index, never from the lines.",
            [_param("name", {"type": "string", "minLength": 1}, where="path"), *index_params],
            _answer("Values, sorted", strings), errors, post=True),
        "/loki/api/v1/series": _operation(
            "Loki: the label sets the selectors match", "Read from the series index, never from the lines.",
            [_param("match[]", {"type": "array", "items": _SELECTOR}, "Repeat for several selectors",
                    required=True), *index_params[:2]],
            _answer("Label sets", {"type": "array", "items": {"type": "object",
                                                              "additionalProperties": {"type": "string"}}}),
            errors, post=True),
        "/loki/api/v1/tail": _operation(
            "Loki: live tail over WebSocket (Grafana Live, logcli query --tail)",
            "Send `Upgrade: websocket` (ws://host:port/loki/api/v1/tail?query=...). Everything refusable is "
            "refused before the upgrade, as HTTP; then 101 and text messages {\"streams\": [{\"stream\": "
            "{...}, \"values\": [[\"<ns>\", \"line\"]]}]}: first the newest `limit` lines since `start`, "
            "oldest first, then every new line once, in order. A request without the upgrade headers is 400.",
            [_param("query", _QUERY, "A log query; a metric query is 400", required=True),
             _param("start", _TIME, "Defaults to an hour ago; at most QUERY_MAX_RANGE_SECONDS ago"),
             _param("limit", {"type": "integer", "minimum": 1}, "Stored lines sent first; default 100, at most "
                                                                  "QUERY_MAX_ROWS"),
             _param("delay_for", {"type": "integer", "minimum": 0, "maximum": 5},
                    "Seconds each poll stays behind now, for late lines")],
            {"description": "Switching Protocols: the WebSocket session"}, errors, post=False, ok_status="101"),
        "/loki/api/v1/format_query": _operation(
            "Loki: the query written back one canonical way", "A query this server refuses is 400, naming "
            "the construct.", [_param("query", _QUERY, required=True)], _answer("The formatted query", {"type": "string"}),
            {"400": errors["400"], "401": unauthorized}, post=True),
        "/loki/api/v1/status/buildinfo": _operation(
            "Loki: the Loki API version this server speaks", "", [],
            {"description": "Build information", "content": {"application/json": {"schema": {
                "type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}}}}},
            {"401": unauthorized}, post=False),
    }
