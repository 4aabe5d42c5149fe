"""GET /query parameters -> a validated LogQuery (pure: no I/O)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from common.timestamps import NS_PER_SECOND, TimestampError, parse_rfc3339_ns

REQUIRED = ("namespace", "pod_name", "container_name", "start_time")


class QueryParamError(ValueError):
    def __init__(self, param: str, detail: str):
        super().__init__(f"{param}: {detail}")
        self.param = param
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class LogQuery:
    namespace: str
    pod_name: str
    container_name: str
    start_ns: int
    end_ns: int


def parse_log_query(params: Mapping[str, str], now_ns: int, max_range_seconds: int) -> LogQuery:
    for name in REQUIRED:
        if not params.get(name, "").strip():
            raise QueryParamError(name, f"missing required query parameter '{name}'")
    start_ns = _time(params, "start_time")
    end_ns = _time(params, "end_time") if params.get("end_time", "").strip() else now_ns
    if start_ns >= end_ns:
        raise QueryParamError("start_time", "start_time must be before end_time (end_time defaults to now)")
    if end_ns - start_ns > max_range_seconds * NS_PER_SECOND:
        raise QueryParamError(
            "end_time", f"time range longer than {max_range_seconds} seconds (QUERY_MAX_RANGE_SECONDS)"
        )
    return LogQuery(params["namespace"], params["pod_name"], params["container_name"], start_ns, end_ns)


def _time(params: Mapping[str, str], name: str) -> int:
    try:
        return parse_rfc3339_ns(params[name].strip())
    except TimestampError as error:
        raise QueryParamError(name, f"{error} (expected RFC 3339, e.g. 2018-05-07T00:00:00.000Z)") from None
