"""Evaluating parsed LogQL (`common.logql`) over lines already read: pure functions, no I/O.

- `stream_matches(selector, labels)`: does a stream's label set pass the selector.
- `pipeline(log_query)`: one line and its stream's labels in, `(line, labels)` or None out.
- `evaluate_metric(query, samples, start_ns, end_ns, step_ns)`: count_over_time / rate / sum by
  over the (ts_ns, labels) of the lines that passed the pipeline, as Loki's matrix.
- `evaluate_constant(expr)`: numbers and vector(n) with + - * /.

The caller reads every line with `read_bounds(...)`'s window (`from_ns < ts <= to_ns`): a metric
over a truncated read would be a wrong answer, so a read cut by a scan cap must be refused.
"""

from __future__ import annotations

import json
import math
import operator
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from common.logql import (
    NS_PER_SECOND,
    BinaryOp,
    DropLabels,
    KeepLabels,
    LabelFilter,
    LabelFilterAnd,
    LabelFilterOr,
    LineFilter,
    LineFormat,
    LogQLError,
    LogQuery,
    Matcher,
    NumberLiteral,
    Parser,
    RangeAggregation,
    Selector,
    VectorAggregation,
    VectorLiteral,
    compile_regex,
    parse_bytes,
    parse_duration,
)

ERROR_LABEL = "__error__"
ERROR_DETAILS_LABEL = "__error_details__"
JSON_PARSER_ERROR = "JSONParserErr"
LOGFMT_PARSER_ERROR = "LogfmtParserErr"
LABEL_FILTER_ERROR = "LabelFilterErr"
# Loki's limit on a range query's resolution: more steps than this is the client's to fix.
MAX_POINTS_PER_SERIES = 11_000

Labels = Mapping[str, str]
Pipeline = Callable[[str, Labels], "tuple[str, Labels] | None"]
Series = tuple[dict[str, str], list[tuple[float, str]]]


# --------------------------------------------------------------------------- stream selectors


def _value_test(op: str, value: str, construct: str) -> Callable[[str], bool]:
    """A test of one label value, as a Prometheus matcher: missing labels are the empty value."""
    if op == "=":
        return lambda actual: actual == value
    if op == "!=":
        return lambda actual: actual != value
    search = compile_regex(value, construct, anchored=True).search
    if op == "=~":
        return lambda actual: search(actual) is not None
    return lambda actual: search(actual) is None


def matcher_test(matcher: Matcher) -> Callable[[Labels], bool]:
    test = _value_test(matcher.op, matcher.value, f"matcher {matcher.name}{matcher.op}")
    name = matcher.name
    return lambda labels: test(labels.get(name, ""))


def stream_matcher(selector: Selector) -> Callable[[Labels], bool]:
    """A compiled `stream_matches` for one selector, to test many streams."""
    tests = [matcher_test(m) for m in selector.matchers]
    return lambda labels: all(test(labels) for test in tests)


def stream_matches(selector: Selector, labels: Labels) -> bool:
    return stream_matcher(selector)(labels)


# ----------------------------------------------------------------------------------- pipeline

# A stage that reads or changes labels: (line, labels it may change, stream labels) -> line | None.
_LabelStage = Callable[[str, dict, Labels], "str | None"]


def pipeline(log_query: LogQuery) -> Pipeline:
    """The query's stages, in order, compiled into one function of (line, stream labels).

    It returns None for a line the stages drop, else the (possibly reformatted) line and its
    labels: the stream's own mapping when no stage touches labels, else a new dict.
    """
    stages: list[tuple[bool, Callable]] = []
    for stage in log_query.stages:
        if isinstance(stage, LineFilter):
            stages.append((True, _line_filter(stage)))
        else:
            stages.append((False, _label_stage(stage)))

    def run(line: str, stream_labels: Labels):
        labels = None
        for is_line_filter, apply in stages:
            if is_line_filter:
                if not apply(line):
                    return None
                continue
            if labels is None:
                labels = dict(stream_labels)
            line = apply(line, labels, stream_labels)
            if line is None:
                return None
        return line, (stream_labels if labels is None else labels)

    return run


def _line_filter(stage: LineFilter) -> Callable[[str], bool]:
    needle = stage.value
    if stage.op == "|=":
        return lambda line: needle in line
    if stage.op == "!=":
        return lambda line: needle not in line
    search = compile_regex(needle, f"line filter {stage.op}", anchored=False).search
    if stage.op == "|~":
        return lambda line: search(line) is not None
    return lambda line: search(line) is None


def _label_stage(stage) -> _LabelStage:
    if isinstance(stage, Parser):
        if stage.kind == "json":
            return _json_stage
        return _logfmt_stage(stage.strict, stage.keep_empty)
    if isinstance(stage, (LabelFilter, LabelFilterAnd, LabelFilterOr)):
        test = _label_filter(stage)
        return lambda line, labels, _stream: line if test(labels) else None
    if isinstance(stage, LineFormat):
        parts = stage.parts
        return lambda _line, labels, _stream: "".join(
            labels.get(text, "") if is_label else text for is_label, text in parts)
    if isinstance(stage, DropLabels):
        return _drop_stage(stage)
    if isinstance(stage, KeepLabels):
        return _keep_stage(stage)
    raise TypeError(f"not a pipeline stage: {stage!r}")  # pragma: no cover


def _set_error(labels: dict, error: str, details: str) -> None:
    labels[ERROR_LABEL] = error
    labels[ERROR_DETAILS_LABEL] = details


# Label filters ---------------------------------------------------------------------------

_COMPARE = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
            "<": operator.lt, "<=": operator.le}


def _label_filter(node) -> Callable[[dict], bool]:
    """A test of a line's labels; conversion failures set `__error__` and keep the line, as Loki."""
    if isinstance(node, LabelFilterAnd):
        tests = [_label_filter(f) for f in node.filters]
        return lambda labels: all(test(labels) for test in tests)
    if isinstance(node, LabelFilterOr):
        tests = [_label_filter(f) for f in node.filters]
        return lambda labels: any(test(labels) for test in tests)
    name = node.name
    if node.kind == "string":
        test = _value_test(node.op, node.value, f"label filter {name}{node.op}")
        return lambda labels: test(labels.get(name, ""))
    convert = {"number": _go_float, "duration": parse_duration, "bytes": parse_bytes}[node.kind]
    compare, target = _COMPARE[node.op], node.value

    def numeric(labels: dict) -> bool:
        if ERROR_LABEL in labels:
            return True  # only string filters drop lines that already carry an error
        value = labels.get(name)
        if value is None:
            return False
        converted = convert(value)
        if converted is None:
            _set_error(labels, LABEL_FILTER_ERROR, f"cannot convert {name}={value!r} to a {node.kind}")
            return True
        return compare(converted, target)

    return numeric


def _go_float(text: str) -> float | None:
    # Python's float() also takes surrounding spaces and `1_000`, which Go's ParseFloat refuses.
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


# Parsers -----------------------------------------------------------------------------------

_INVALID_NAME_CHARACTER = re.compile(r"[^a-zA-Z0-9_]")
# Lone surrogates (from `\ud800` escapes) and U+FFFD: Loki's parsers turn such values into "".
_INVALID_TEXT = re.compile("[\ud800-\udfff\ufffd]")


def _sanitize(key: str, first: bool) -> str:
    """A JSON or logfmt key as a label name: Loki's rules (other characters become `_`)."""
    key = key.strip()
    if first and key[:1].isdigit():
        key = "_" + key
    return _INVALID_NAME_CHARACTER.sub("_", key)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _json_stage(line: str, labels: dict, stream: Labels) -> str:
    try:
        # Numbers keep their text (`1.50` stays `1.50`), as Loki's parser reads them.
        document = json.loads(line, parse_float=str, parse_int=str, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        _set_error(labels, JSON_PARSER_ERROR, f"invalid JSON: {error}")
        return line
    if not isinstance(document, dict):
        _set_error(labels, JSON_PARSER_ERROR, "expecting a JSON object")
        return line
    # Depth-first in document order, without recursion: later duplicates win, as in Loki.
    stack = [("", iter(document.items()))]
    while stack:
        prefix, items = stack[-1]
        for key, value in items:
            part = _sanitize(key, first=not prefix)
            name = f"{prefix}_{part}" if prefix else part
            if isinstance(value, dict):
                stack.append((name, iter(value.items())))
                break
            if isinstance(value, str):
                text = "" if _INVALID_TEXT.search(value) else value
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                continue  # arrays and nulls are skipped, as Loki skips them
            if not name:
                continue
            labels[name + "_extracted" if name in stream else name] = text
        else:
            stack.pop()
    return line


def _logfmt_stage(strict: bool, keep_empty: bool) -> _LabelStage:
    def apply(line: str, labels: dict, stream: Labels) -> str:
        for key, value in _logfmt_pairs(line, strict, labels):
            name = _sanitize(key, first=True)
            if not name:
                continue
            if value is not None and _INVALID_TEXT.search(value):
                value = None
            if not value and not keep_empty:
                continue
            labels[name + "_extracted" if name in stream else name] = value or ""
        return line

    return apply


def _logfmt_pairs(line: str, strict: bool, labels: dict):
    """(key, value or None) pairs of a logfmt line, as Loki's decoder reads them.

    A malformed pair is skipped; with `strict` the first one ends the line and sets `__error__`.
    """
    position, end = 0, len(line)
    while position < end:
        pair, position, error = _logfmt_pair(line, position)
        if error is not None:
            if strict:
                _set_error(labels, LOGFMT_PARSER_ERROR, error)
                return
            continue
        if pair is not None:
            yield pair


def _logfmt_pair(line: str, position: int):
    """One step of the decoder: ((key, value) or None, next position, error or None)."""
    end = len(line)
    while position < end and line[position] <= " ":
        position += 1
    if position >= end:
        return None, end, None
    start = position
    while position < end:
        char = line[position]
        if char == "=":
            break
        if char == '"':
            return None, _skip_token(line, position), f"unexpected '\"' at pos {position + 1}"
        if char <= " ":
            return (line[start:position], None), position, None
        position += 1
    else:
        return (line[start:end], None), end, None
    if position == start:
        return None, _skip_token(line, position), f"unexpected '=' at pos {position + 1}"
    key = line[start:position]
    position += 1
    if position >= end or line[position] <= " ":
        return (key, None), position, None
    if line[position] == '"':
        return _logfmt_quoted(line, position, key)
    start = position
    while position < end and line[position] > " ":
        if line[position] in '="':
            return None, _skip_token(line, position), f"unexpected {line[position]!r} at pos {position + 1}"
        position += 1
    return (key, line[start:position]), position, None


def _logfmt_quoted(line: str, quote: int, key: str):
    position, escaped, has_escapes = quote + 1, False, False
    while position < len(line):
        char = line[position]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = has_escapes = True
        elif char == '"':
            raw = line[quote:position + 1]
            if not has_escapes:
                return (key, raw[1:-1] or None), position + 1, None
            try:
                return (key, json.loads(raw)), position + 1, None
            except ValueError:
                return None, position + 1, f"invalid quoted value at pos {position + 1}"
        position += 1
    return None, len(line), f"unterminated quoted value at pos {len(line) + 1}"


def _skip_token(line: str, position: int) -> int:
    while position < len(line) and line[position] > " ":
        position += 1
    return position


# drop and keep -------------------------------------------------------------------------------

_SPECIAL_LABELS = frozenset({ERROR_LABEL, ERROR_DETAILS_LABEL})


def _named_tests(names: tuple) -> list[tuple[str, Callable[[str], bool] | None]]:
    tests = []
    for item in names:
        if isinstance(item, Matcher):
            tests.append((item.name, _value_test(item.op, item.value, f"matcher {item.name}{item.op}")))
        else:
            tests.append((item, None))
    return tests


def _drop_stage(stage: DropLabels) -> _LabelStage:
    tests = _named_tests(stage.labels)

    def apply(line: str, labels: dict, _stream: Labels) -> str:
        for name, test in tests:
            if name in labels and (test is None or test(labels[name])):
                del labels[name]
        return line

    return apply


def _keep_stage(stage: KeepLabels) -> _LabelStage:
    tests = _named_tests(stage.labels)

    def apply(line: str, labels: dict, _stream: Labels) -> str:
        for name in list(labels):
            if name in _SPECIAL_LABELS:
                continue
            if not any(name == wanted and (test is None or test(labels[name])) for wanted, test in tests):
                del labels[name]
        return line

    return apply


# ------------------------------------------------------------------------------ metric queries


def read_bounds(query: RangeAggregation | VectorAggregation, start_ns: int, end_ns: int) -> tuple[int, int]:
    """(from_ns, to_ns): the lines a metric query over [start, end] needs, from_ns < ts <= to_ns."""
    return start_ns - _range_aggregation(query).range_ns, end_ns


def step_count(start_ns: int, end_ns: int, step_ns: int) -> int:
    """The number of evaluation steps, start to end inclusive. Raises LogQLError when invalid."""
    if end_ns < start_ns:
        raise LogQLError("end", "end must not be before start")
    if step_ns <= 0:
        if end_ns != start_ns:
            raise LogQLError("step", "step must be a positive duration")
        return 1
    count = (end_ns - start_ns) // step_ns + 1
    if count > MAX_POINTS_PER_SERIES:
        raise LogQLError(
            "step", f"exceeded maximum resolution of {MAX_POINTS_PER_SERIES:,} points per timeseries; "
            "increase the step")
    return count


def evaluate_metric(
    query: RangeAggregation | VectorAggregation,
    samples: Iterable[tuple[int, Labels]],
    start_ns: int,
    end_ns: int,
    step_ns: int,
) -> list[Series]:
    """Loki's matrix: one (labels, [(t_seconds, value)]) per series, steps without lines omitted.

    `samples` are (ts_ns, labels) of the lines that passed the query's pipeline. Each step t, from
    start to end inclusive, counts the lines in (t - range, t]; `rate` divides by the range in
    seconds; `sum by (...)` adds the series sharing the listed labels.
    """
    steps = step_count(start_ns, end_ns, step_ns)
    step_ns = max(step_ns, 1)
    aggregation = _range_aggregation(query)
    by = _grouping(query)
    groups: dict[tuple, list[int]] = {}
    for ts, labels in samples:
        if ERROR_LABEL in labels:
            raise _pipeline_error(labels)
        if by is None:
            key = tuple(sorted(labels.items()))
        else:
            key = tuple(labels.get(name) for name in by)
        timestamps = groups.get(key)
        if timestamps is None:
            groups[key] = [ts]
        else:
            timestamps.append(ts)
    range_ns = aggregation.range_ns
    divisor = range_ns / NS_PER_SECOND if aggregation.func == "rate" else 1
    series: list[Series] = []
    for key, timestamps in groups.items():
        counts = _window_counts(timestamps, start_ns, step_ns, steps, range_ns)
        if not counts:
            continue
        metric = dict(key) if by is None else {n: v for n, v in zip(by, key) if v is not None}
        points = [((start_ns + k * step_ns) / NS_PER_SECOND,
                   format_value(count / divisor if divisor != 1 else count)) for k, count in counts]
        series.append((metric, points))
    series.sort(key=lambda item: sorted(item[0].items()))
    return series


def _range_aggregation(query) -> RangeAggregation:
    while isinstance(query, VectorAggregation):
        query = query.inner
    return query


def _grouping(query) -> tuple[str, ...] | None:
    """The labels a series keeps: those every enclosing `sum by` lists (None: all of them)."""
    kept: tuple[str, ...] | None = None
    while isinstance(query, VectorAggregation):
        kept = query.by if kept is None else tuple(name for name in kept if name in query.by)
        query = query.inner
    return kept


def _window_counts(timestamps: list[int], start: int, step: int, steps: int, range_ns: int) -> list[tuple[int, int]]:
    """(step index, lines in (t - range, t]) for each step t = start + k * step with lines."""
    timestamps.sort()
    if len(timestamps) >= steps:
        counts = []
        for k in range(steps):
            t = start + k * step
            count = bisect_right(timestamps, t) - bisect_right(timestamps, t - range_ns)
            if count:
                counts.append((k, count))
        return counts
    # Fewer lines than steps: each line adds 1 to the steps whose window holds it,
    # ts <= t < ts + range, i.e. k in [ceil((ts - start) / step), ceil((ts + range - start) / step)).
    changes: dict[int, int] = {}
    for ts in timestamps:
        first = max(-((start - ts) // step), 0)
        stop = min(-((start - ts - range_ns) // step), steps)
        if first < stop:
            changes[first] = changes.get(first, 0) + 1
            changes[stop] = changes.get(stop, 0) - 1
    counts = []
    running = 0
    boundaries = sorted(changes)
    for index, k in enumerate(boundaries):
        running += changes[k]
        if running:
            following = boundaries[index + 1] if index + 1 < len(boundaries) else steps
            counts.extend((j, running) for j in range(k, following))
    return counts


def _pipeline_error(labels: Labels) -> LogQLError:
    error = labels[ERROR_LABEL]
    return LogQLError(
        "pipeline error",
        f"pipeline error: '{error}' for series: '{_format_labels(labels)}'. Use a label filter to "
        f'intentionally skip this error (e.g. | __error__!="{error}"); to skip all errors use '
        '| __error__="" or | drop __error__, __error_details__')


def _format_labels(labels: Labels) -> str:
    return "{" + ", ".join(f"{name}={json.dumps(value)}" for name, value in sorted(labels.items())) + "}"


# --------------------------------------------------------------------------- constant expressions

_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def evaluate_constant(expr) -> float:
    """The value of numbers and vector(n) combined with + - * / (IEEE: 1/0 is +Inf)."""
    if isinstance(expr, (NumberLiteral, VectorLiteral)):
        return expr.value
    if not isinstance(expr, BinaryOp):
        raise TypeError(f"not a constant expression: {expr!r}")
    left, right = evaluate_constant(expr.left), evaluate_constant(expr.right)
    if expr.op != "/":
        return _ARITHMETIC[expr.op](left, right)
    if right == 0:
        if left == 0 or math.isnan(left):
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1, right)
    return left / right


def is_scalar(expr) -> bool:
    """True when no vector(n) appears: Loki answers such an expression as a `scalar`."""
    if isinstance(expr, BinaryOp):
        return is_scalar(expr.left) and is_scalar(expr.right)
    return isinstance(expr, NumberLiteral)


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (Go's FormatFloat 'f', -1): 2, 0.5, +Inf, NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int):
        return str(value)
    return format(Decimal(repr(value)).normalize(), "f")
