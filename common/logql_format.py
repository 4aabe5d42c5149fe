"""A parsed LogQL query written back as text, one canonical way (GET /loki/api/v1/format_query).

Pure: the AST of common.logql in, a string out, which parses back to the same AST. One line, with
Loki's spacing (`{app="web"} |= "x" | json`), strings in double quotes with Go escapes, ranges and
durations in the largest unit that divides them (`[5m]`, `250ms`), the range after the pipeline.
"""

from __future__ import annotations

import json
import math

from common.logql import (BinaryOp, DropLabels, KeepLabels, LabelFilter, LabelFilterAnd, LabelFilterOr, LineFilter,
                          LineFormat, LogQuery, Matcher, NumberLiteral, Parser, Query, RangeAggregation, Selector,
                          VectorAggregation, VectorLiteral)

_RANGE_UNITS = (("y", 365 * 86400 * 10**9), ("w", 7 * 86400 * 10**9), ("d", 86400 * 10**9), ("h", 3600 * 10**9),
                ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6))
_DURATION_UNITS = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))


def format_query(query: Query) -> str:
    if isinstance(query, LogQuery):
        return _log_query(query)
    if isinstance(query, RangeAggregation):
        return f"{query.func}({_log_query(query.log_query)} [{_in_units(query.range_ns, _RANGE_UNITS)}])"
    if isinstance(query, VectorAggregation):
        by = f" by ({', '.join(query.by)})" if query.by else ""
        return f"{query.op}{by} ({format_query(query.inner)})"
    if isinstance(query, NumberLiteral):
        return _number(query.value)
    if isinstance(query, VectorLiteral):
        return f"vector({_number(query.value)})"
    if isinstance(query, BinaryOp):
        sides = [f"({format_query(side)})" if isinstance(side, BinaryOp) else format_query(side)
                 for side in (query.left, query.right)]
        return f"{sides[0]} {query.op} {sides[1]}"
    raise TypeError(f"not a LogQL AST node: {query!r}")


def _log_query(query: LogQuery) -> str:
    return " ".join([_selector(query.selector), *(_stage(stage) for stage in query.stages)])


def _selector(selector: Selector) -> str:
    return "{" + ", ".join(_matcher(m) for m in selector.matchers) + "}"


def _matcher(matcher: Matcher) -> str:
    return f"{matcher.name}{matcher.op}{_string(matcher.value)}"


def _stage(stage) -> str:
    if isinstance(stage, LineFilter):
        return f"{stage.op} {_string(stage.value)}"
    if isinstance(stage, Parser):
        flags = (" --strict" if stage.strict else "") + (" --keep-empty" if stage.keep_empty else "")
        return f"| {stage.kind}{flags}"
    if isinstance(stage, LineFormat):
        return f"| line_format {_string(stage.template)}"
    if isinstance(stage, (DropLabels, KeepLabels)):
        names = ", ".join(label if isinstance(label, str) else _matcher(label) for label in stage.labels)
        return f"| {'drop' if isinstance(stage, DropLabels) else 'keep'} {names}"
    return f"| {_label_filter(stage)}"


def _label_filter(node) -> str:
    if isinstance(node, LabelFilterOr):
        return " or ".join(_label_filter(part) for part in node.filters)
    if isinstance(node, LabelFilterAnd):
        return " and ".join(f"({_label_filter(part)})" if isinstance(part, LabelFilterOr) else _label_filter(part)
                            for part in node.filters)
    assert isinstance(node, LabelFilter)
    if node.kind == "string":
        return f"{node.name}{node.op}{_string(node.value)}"
    if node.kind == "duration":
        value = ("-" if node.value < 0 else "") + _in_units(abs(int(node.value)), _DURATION_UNITS)
    elif node.kind == "bytes":
        value = f"{int(node.value)}B"
    else:
        value = _number(float(node.value))
    return f"{node.name} {node.op} {value}"


def _in_units(nanoseconds: int, units) -> str:
    for name, size in units:
        if nanoseconds % size == 0:
            return f"{nanoseconds // size}{name}"
    return f"{nanoseconds}ns"


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _string(value: str) -> str:
    """A Go string literal (JSON's escapes are Go's)."""
    return json.dumps(value, ensure_ascii=False)
