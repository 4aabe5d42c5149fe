"""Loki's read API, as Grafana's Loki data source and logcli call it: query_range and query (GET, or
POST with a form body), labels, label values, series and buildinfo. HTTP only: the selection is
common.loki_select's, the reading common.loki_read's. Answers have Loki's shapes
({"status": "success", "data": ...}); errors keep this service's {"message", "detail"}.
"""

from __future__ import annotations

import falcon
import msgspec

from api.loki import params as p
from common.errors import ParameterError
from common.log_store import LogStore
from common.logql import (LogQLError, LogQuery, Query, Selector, is_constant, is_metric_query, log_query_of, parse,
                          NS_PER_SECOND)
from common.logql_format import format_query
from common.logql_eval import evaluate_constant, format_value, is_scalar, read_bounds, step_count
from common.loki_read import Caps, log_streams, metric_samples, series_by_bucket
from common.loki_labels import LokiLabelNames
from common.loki_select import Selection, label_sets, select
from common.settings import Settings
from common.timestamps import now_ns

_json = msgspec.json.Encoder()
BUILD_VERSION = "3.0.0"
_INSTANT_LOG_QUERY = ("log queries are not supported as an instant query type, please change your query to a "
                      "range query type")


def _seconds(ts_ns: int) -> int | float:
    """An evaluation time as Loki writes it: seconds, a whole number when it is one."""
    whole, rest = divmod(ts_ns, NS_PER_SECOND)
    return whole if rest == 0 else ts_ns / NS_PER_SECOND


def _point(t: float) -> int | float:
    return int(t) if t == int(t) else t


def _success(resp: falcon.Response, data: dict) -> None:
    resp.data = _json.encode({"status": "success", "data": data})
    resp.content_type = falcon.MEDIA_JSON


class LokiResource:
    def __init__(self, settings: Settings, store: LogStore):
        self._settings = settings
        self._store = store
        self._names = LokiLabelNames.of(settings)

    def _caps(self) -> Caps:
        s = self._settings
        return Caps(max_rows=s.query_max_rows, max_scan=s.query_max_scan_rows,
                    timeout_seconds=s.query_timeout_seconds, bucket_seconds=s.cassandra_bucket_seconds)

    def _series(self, start_ns: int, end_ns: int) -> dict[int, list]:
        """The series index's entries of every bucket in [start_ns, end_ns], by bucket."""
        return series_by_bucket(self._store, start_ns, end_ns, self._settings.cassandra_bucket_seconds)

    def _selection(self, selector: Selector, start_ns: int, end_ns: int) -> Selection:
        return select(selector, self._series(start_ns, end_ns), self._names)



class _FormPost:
    """POST with a form body answers as GET, as Loki's reads do."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, **kwargs) -> None:
        self.on_get(req, resp, **kwargs)  # type: ignore[attr-defined]


class QueryRangeResource(_FormPost, LokiResource):
    """GET|POST /loki/api/v1/query_range: streams for a log query, a matrix for a metric query."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        s = self._settings
        params = p.request_params(req)
        query = parse(p.required(params, "query"))
        start_ns, end_ns = p.time_range(params, now_ns(), s.query_max_range_seconds, p.DEFAULT_RANGE_SECONDS)
        step = p.step_ns(params, start_ns, end_ns)
        if not is_metric_query(query):
            limit, direction = p.limit(params, s.query_max_rows), p.direction(params)
            if end_ns <= start_ns:
                streams = []
            else:
                selection = self._selection(query.selector, start_ns, end_ns - 1)
                streams = log_streams(self._store, query, selection, start_ns, end_ns, limit=limit,
                                      direction=direction, caps=self._caps())
            result = [{"stream": labels, "values": [[str(ts), line] for ts, line in values]}
                      for labels, values in streams]
            _success(resp, {"resultType": "streams", "result": result, "stats": {}})
            return
        steps = step_count(start_ns, end_ns, step)
        if is_constant(query):
            value = format_value(evaluate_constant(query))
            values = [[_seconds(start_ns + k * step), value] for k in range(steps)]
            _success(resp, {"resultType": "matrix", "result": [{"metric": {}, "values": values}], "stats": {}})
            return
        series = self._metric(query, start_ns, end_ns, step)
        result = [{"metric": metric, "values": [[_point(t), v] for t, v in points]} for metric, points in series]
        _success(resp, {"resultType": "matrix", "result": result, "stats": {}})

    def _metric(self, query: Query, start_ns: int, end_ns: int, step: int):
        log_query = log_query_of(query)
        assert log_query is not None
        from_ns, to_ns = read_bounds(query, start_ns, end_ns)
        selection = self._selection(log_query.selector, from_ns + 1, to_ns)
        return metric_samples(self._store, query, selection, start_ns, end_ns, step, caps=self._caps())


class InstantQueryResource(QueryRangeResource):
    """GET|POST /loki/api/v1/query: a metric query at one time, as a vector (a number: a scalar).
    A log query is refused, as Loki 3.2 refuses it."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = p.request_params(req)
        query = parse(p.required(params, "query"))
        at = p.instant_time(params, now_ns())
        if not is_metric_query(query):
            raise LogQLError("instant log query", _INSTANT_LOG_QUERY)
        if is_constant(query):
            value = format_value(evaluate_constant(query))
            if is_scalar(query):
                _success(resp, {"resultType": "scalar", "result": [_seconds(at), value], "stats": {}})
            else:
                _success(resp, {"resultType": "vector", "result": [{"metric": {}, "value": [_seconds(at), value]}],
                                "stats": {}})
            return
        p.direction(params)  # validated as Loki does, though a vector has no order
        series = self._metric(query, at, at, 0)
        result = [{"metric": metric, "value": [_point(points[0][0]), points[0][1]]} for metric, points in series]
        _success(resp, {"resultType": "vector", "result": result, "stats": {}})


def _selectors(texts: list[str], name: str) -> list[Selector]:
    selectors = []
    for text in texts:
        query = parse(text)
        if not isinstance(query, LogQuery) or query.stages:
            raise ParameterError(name, f"'{name}' takes a stream selector such as {{app=\"web\"}}, got {text!r}")
        selectors.append(query.selector)
    return selectors


class _IndexResource(_FormPost, LokiResource):
    def _label_sets(self, params: p.Params, selector_names: tuple[str, ...]) -> list[dict[str, str]]:
        s = self._settings
        start_ns, end_ns = p.time_range(params, now_ns(), s.query_max_range_seconds, p.DEFAULT_LABELS_RANGE_SECONDS)
        selectors = _selectors(p.many(params, *selector_names), selector_names[0])
        return label_sets(self._series(start_ns, end_ns).values(), self._names, selectors)


class LabelsResource(_IndexResource):
    """GET|POST /loki/api/v1/labels: the label names of the streams with lines in the range."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sets = self._label_sets(p.request_params(req), ("query",))
        _success_list(resp, sorted({name for labels in sets for name in labels}))


class LabelValuesResource(_IndexResource):
    """GET|POST /loki/api/v1/label/{name}/values: one label's values over the range."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        sets = self._label_sets(p.request_params(req), ("query",))
        _success_list(resp, sorted({labels[name] for labels in sets if name in labels}))


class SeriesResource(_IndexResource):
    """GET|POST /loki/api/v1/series?match[]=...: the label sets the selectors match."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = p.request_params(req)
        if not p.many(params, "match[]", "match"):
            raise ParameterError("match[]", "at least one match[] stream selector is required, e.g. match[]={app=\"web\"}")
        _success_list(resp, self._label_sets(params, ("match[]", "match")))


def _success_list(resp: falcon.Response, data: list | str) -> None:
    resp.data = _json.encode({"status": "success", "data": data})
    resp.content_type = falcon.MEDIA_JSON


class FormatQueryResource(_FormPost):
    """GET|POST /loki/api/v1/format_query?query=...: the query written back one canonical way
    (common/logql_format.py); a query this server refuses is 400, as for the reads."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _success_list(resp, format_query(parse(p.required(p.request_params(req), "query"))))


class BuildInfoResource:
    """GET /loki/api/v1/status/buildinfo: the Loki API version this server speaks."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = _json.encode({"version": BUILD_VERSION, "revision": "kube-insight-logserver", "branch": "",
                                  "buildUser": "", "buildDate": "", "goVersion": ""})
        resp.content_type = falcon.MEDIA_JSON
