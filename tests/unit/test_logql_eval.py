"""common.logql_eval: stream matching, the line pipeline and metric evaluation, as Loki computes them."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.logql import LogQLError, parse
from common.logql_eval import (
    MAX_POINTS_PER_SERIES,
    _window_counts,
    evaluate_constant,
    evaluate_metric,
    format_value,
    is_scalar,
    pipeline,
    read_bounds,
    step_count,
    stream_matches,
)

S = 1_000_000_000
STREAM = {"app": "api", "namespace": "default"}


def run(query: str, line: str, labels=STREAM):
    return pipeline(parse(query))(line, labels)


def labels_after(query: str, line: str, labels=STREAM) -> dict:
    result = run(query, line, labels)
    assert result is not None, "the line was dropped"
    return dict(result[1])


# ------------------------------------------------------------------------------- stream selectors


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ('{app="api"}', {"app": "api"}, True),
    ('{app="api"}', {"app": "apis"}, False),
    ('{app="api", tier="web"}', {"app": "api"}, False),
    ('{ns="a", app!="web"}', {"ns": "a", "app": "api"}, True),
    ('{app="api", tier!="web"}', {"app": "api"}, True),  # a missing label is the empty value
    ('{app="api", tier=""}', {"app": "api"}, True),
    ('{app="api", tier=""}', {"app": "api", "tier": "db"}, False),
    ('{app=~"ap"}', {"app": "api"}, False),  # anchored: the whole value
    ('{app=~"ap.*"}', {"app": "api"}, True),
    ('{app=~"api|web"}', {"app": "xapi"}, False),  # the anchors hold around an alternation
    ('{app=~"api|web"}', {"app": "web"}, True),
    ('{app=~"(?i)API"}', {"app": "api"}, True),
    ('{app=~"a.i"}', {"app": "a\ni"}, True),  # `.` matches a newline, as in Prometheus
    ('{app=~".+", pod!~"api-.*"}', {"app": "x", "pod": "api-1"}, False),
    ('{app=~".+", pod!~"api-.*"}', {"app": "x", "pod": "web-1"}, True),
])
def test_a_stream_matches_a_selector_as_in_loki(selector, labels, matches):
    assert stream_matches(parse(selector).selector, labels) is matches


# ----------------------------------------------------------------------------------- line filters


def test_chained_line_filters_all_apply():
    query = '{app="api"} |= "GET" != "/health" |~ "status=5\\\\d\\\\d" !~ "(?i)bot"'
    assert run(query, "GET /users status=503 ua=curl") is not None
    assert run(query, "GET /health status=503") is None
    assert run(query, "POST /users status=503") is None
    assert run(query, "GET /users status=404") is None
    assert run(query, "GET /users status=500 ua=GoogleBOT") is None


def test_substring_filters_are_case_sensitive_and_regex_filters_unanchored():
    assert run('{app="api"} |= "error"', "an ERROR") is None
    assert run('{app="api"} |~ "err"', "an error here") is not None


def test_a_line_that_only_passes_line_filters_keeps_its_streams_labels_object():
    line, labels = run('{app="api"} |= "x"', "x")
    assert labels is STREAM


# -------------------------------------------------------------------------------------- | json

JSON_LINE = (
    '{"level":"error","msg":"failed \\"x\\"","http":{"method":"GET","status":502,"latency":"1.5s",'
    '"headers":{"user-agent":"curl"}},"took":1.50,"ok":false,"tags":["a","b"],"trace":null,'
    '"app":"checkout","foo.bar":1,"1st":"x"}'
)


def test_json_flattens_nested_objects_with_underscores_as_loki():
    assert labels_after('{app="api"} | json', JSON_LINE) == {
        "app": "api", "namespace": "default",
        "level": "error", "msg": 'failed "x"',
        "http_method": "GET", "http_status": "502", "http_latency": "1.5s",
        "http_headers_user_agent": "curl",
        "took": "1.50",  # numbers keep their text
        "ok": "false",
        "app_extracted": "checkout",  # a stream label is not overwritten
        "foo_bar": "1", "_1st": "x",  # names sanitized
    }  # the array and the null are skipped


@pytest.mark.parametrize("line", ["not json", '["an", "array"]', '"a string"', "", '{"a": 1', '{"a": NaN}'])
def test_a_line_that_is_not_a_json_object_gets_json_parser_err(line):
    labels = labels_after('{app="api"} | json', line)
    assert labels["__error__"] == "JSONParserErr"
    assert labels["__error_details__"]


def test_label_filters_see_the_json_parser_error():
    bad, good = "oops", '{"level":"error"}'
    assert run('{app="api"} | json | __error__=""', bad) is None
    assert run('{app="api"} | json | __error__=""', good) is not None
    assert run('{app="api"} | json | __error__="JSONParserErr"', bad) is not None
    assert run('{app="api"} | json | level="error"', bad) is None


def test_a_json_key_repeated_keeps_the_last_value():
    assert labels_after('{app="api"} | json', '{"a":"1","a":"2"}')["a"] == "2"


def test_deeply_nested_json_is_flattened_without_recursion_limits():
    depth = 200
    line = '{"k":' * depth + '"v"' + "}" * depth
    labels = labels_after('{app="api"} | json', line)
    assert labels["_".join(["k"] * depth)] == "v"


# ------------------------------------------------------------------------------------ | logfmt

LOGFMT_LINE = 'ts=2024-05-01T10:00:00Z level=info msg="user logged in" user="a \\"b\\"" empty= app=web flag'


def test_logfmt_extracts_pairs_with_quoted_values():
    assert labels_after('{app="api"} | logfmt', LOGFMT_LINE) == {
        "app": "api", "namespace": "default",
        "ts": "2024-05-01T10:00:00Z", "level": "info", "msg": "user logged in", "user": 'a "b"',
        "app_extracted": "web",
    }  # `empty=` and the bare `flag` have no value: dropped, as Loki 3 drops them


def test_logfmt_keep_empty_keeps_keys_without_values():
    labels = labels_after('{app="api"} | logfmt --keep-empty', "a= b c=1")
    assert (labels["a"], labels["b"], labels["c"]) == ("", "", "1")


def test_logfmt_skips_a_malformed_pair_and_reads_on():
    labels = labels_after('{app="api"} | logfmt', 'a=1 =x b="unterminated c=3')
    assert labels["a"] == "1"
    assert "__error__" not in labels


def test_logfmt_skips_a_value_with_a_stray_quote_and_reads_the_next_pair():
    labels = labels_after('{app="api"} | logfmt', 'a=x"y b=2')
    assert "a" not in labels and labels["b"] == "2"


def test_strict_logfmt_stops_at_the_first_error_with_logfmt_parser_err():
    labels = labels_after('{app="api"} | logfmt --strict', "a=1 =x c=3")
    assert labels["a"] == "1"
    assert "c" not in labels
    assert labels["__error__"] == "LogfmtParserErr"


def test_logfmt_keys_are_sanitized():
    assert labels_after('{app="api"} | logfmt', "http.status=200 1a=b")["http_status"] == "200"
    assert labels_after('{app="api"} | logfmt', "1a=b")["_1a"] == "b"


# ---------------------------------------------------------------------------------- label filters


@pytest.mark.parametrize(("line", "kept"), [
    ('{"status":"404"}', True), ('{"status":"400"}', True), ('{"status":"200"}', False), ('{"x":1}', False),
])
def test_a_numeric_label_filter_compares_numbers(line, kept):
    assert (run('{app="api"} | json | status >= 400', line) is not None) is kept


def test_a_label_that_is_not_a_number_is_kept_with_label_filter_err():
    labels = labels_after('{app="api"} | json | status >= 400', '{"status":"n/a"}')
    assert labels["__error__"] == "LabelFilterErr"


def test_a_line_already_in_error_passes_numeric_filters():
    labels = labels_after('{app="api"} | json | status >= 400', "not json")
    assert labels["__error__"] == "JSONParserErr"


@pytest.mark.parametrize(("value", "kept"), [("1.5s", True), ("250ms", False), ("1m", True), ("1s", False)])
def test_a_duration_filter_reads_go_durations(value, kept):
    assert (run('{app="api"} | logfmt | took > 1s', f"took={value}") is not None) is kept


@pytest.mark.parametrize(("value", "kept"), [("12KB", True), ("512", False), ("1MiB", True), ("10KB", False)])
def test_a_bytes_filter_reads_byte_sizes(value, kept):
    assert (run('{app="api"} | logfmt | size > 10KB', f"size={value}") is not None) is kept


def test_or_and_and_between_label_filters():
    query = '{app="api"} | logfmt | level="error" or level="warn" and status >= 500'
    assert run(query, "level=error status=200") is not None
    assert run(query, "level=warn status=503") is not None
    assert run(query, "level=warn status=200") is None
    assert run(query, "level=info status=503") is None


def test_a_string_label_filter_treats_a_missing_label_as_empty():
    assert run('{app="api"} | level!="error"', "x") is not None
    assert run('{app="api"} | level=""', "x") is not None
    assert run('{app="api"} | level=~"err.*"', "x") is None


def test_a_label_regex_filter_is_anchored():
    assert run('{app="api"} | logfmt | level=~"err"', "level=error") is None
    assert run('{app="api"} | logfmt | level=~"err.*"', "level=error") is not None


# ------------------------------------------------------------------------------- line_format, drop, keep


def test_line_format_substitutes_labels_and_a_missing_label_is_empty():
    line, _labels = run('{app="api"} | logfmt | line_format "{{.level}}: {{ .msg }}{{.missing}}"',
                        'level=error msg="disk full"')
    assert line == "error: disk full"


def test_line_filters_after_line_format_see_the_new_line():
    formatted = '{app="api"} | logfmt | line_format "{{.level}}: {{.msg}}"'
    assert run(formatted + ' |= "error: disk"', 'level=error msg="disk full"') is not None
    assert run(formatted + ' |= "level="', 'level=error msg="disk full"') is None


def test_drop_removes_labels_and_the_parser_error():
    labels = labels_after('{app="api"} | json | drop __error__, __error_details__, namespace', "oops")
    assert labels == {"app": "api"}


def test_drop_with_a_matcher_removes_only_matching_values():
    query = '{app="api"} | logfmt | drop level="debug"'
    assert "level" not in labels_after(query, "level=debug")
    assert labels_after(query, "level=info")["level"] == "info"


def test_keep_keeps_only_the_listed_labels_and_the_error_labels():
    labels = labels_after('{app="api"} | json | keep app', "oops")
    assert labels == {"app": "api", "__error__": "JSONParserErr", "__error_details__": labels["__error_details__"]}


# ------------------------------------------------------------------------------------ metric queries


def samples(*items):
    """(seconds, labels) -> (ns, labels)."""
    return [(int(seconds * S), labels) for seconds, labels in items]


INFO = {"app": "api", "level": "info"}
ERROR = {"app": "api", "level": "error"}
NO_LEVEL = {"app": "api"}


def test_count_over_time_counts_each_steps_window_excluding_its_start():
    lines = samples((10, INFO), (20, INFO), (25, INFO), (40, INFO))
    result = evaluate_metric(parse('count_over_time({app="api"}[10s])'), lines, 10 * S, 50 * S, 10 * S)
    # t=10: (0,10] -> 10; t=20: (10,20] -> 20; t=30: (20,30] -> 25; t=40: (30,40] -> 40; t=50: none
    assert result == [(INFO, [(10.0, "1"), (20.0, "1"), (30.0, "1"), (40.0, "1")])]


def test_a_window_longer_than_the_step_counts_lines_in_several_steps():
    lines = samples((5, INFO), (15, INFO))
    result = evaluate_metric(parse('count_over_time({app="api"}[20s])'), lines, 0, 40 * S, 10 * S)
    assert result == [(INFO, [(10.0, "1"), (20.0, "2"), (30.0, "1")])]


def test_rate_is_the_count_divided_by_the_range_in_seconds():
    lines = samples((1, INFO), (2, INFO), (3, INFO))
    result = evaluate_metric(parse('rate({app="api"}[1m])'), lines, 60 * S, 60 * S, 0)
    assert result == [(INFO, [(60.0, "0.05")])]


def test_sum_by_adds_series_sharing_the_listed_labels():
    lines = samples((1, INFO), (2, {**INFO, "pod": "b"}), (3, ERROR), (4, NO_LEVEL))
    result = evaluate_metric(parse('sum by (level) (count_over_time({app="api"}[1m]))'), lines, 60 * S, 60 * S, 0)
    assert result == [
        ({}, [(60.0, "1")]),  # the line without `level`
        ({"level": "error"}, [(60.0, "1")]),
        ({"level": "info"}, [(60.0, "2")]),
    ]


def test_sum_without_grouping_adds_everything_into_one_series():
    lines = samples((1, INFO), (2, ERROR))
    result = evaluate_metric(parse('sum(rate({app="api"}[2s]))'), lines, 2 * S, 2 * S, 0)
    assert result == [({}, [(2.0, "1")])]


def test_nested_sums_keep_only_labels_every_level_lists():
    lines = samples((1, {**INFO, "pod": "a"}), (2, {**INFO, "pod": "b"}))
    query = parse('sum by (level) (sum by (level, pod) (count_over_time({app="api"}[1m])))')
    assert evaluate_metric(query, lines, 60 * S, 60 * S, 0) == [({"level": "info"}, [(60.0, "2")])]


def test_grafanas_logs_volume_query_over_parsed_lines():
    query = parse('sum by (level) (count_over_time({app="api"} |= "GET" | logfmt [1m]))')
    run_line = pipeline(query.inner.log_query)
    raw = [(10, "level=info GET /"), (20, "level=error GET /x"), (30, "level=info POST /"), (70, "level=info GET /")]
    passed = [(ts * S, result[1]) for ts, line in raw if (result := run_line(line, NO_LEVEL)) is not None]
    assert evaluate_metric(query, passed, 60 * S, 120 * S, 60 * S) == [
        ({"level": "error"}, [(60.0, "1")]),
        ({"level": "info"}, [(60.0, "1"), (120.0, "1")]),
    ]


def test_no_lines_is_an_empty_matrix():
    assert evaluate_metric(parse('sum(rate({app="api"}[1m]))'), [], 0, 60 * S, 10 * S) == []


def test_lines_still_in_error_refuse_the_metric_query_as_loki_does():
    with pytest.raises(LogQLError) as raised:
        evaluate_metric(parse('count_over_time({app="api"} | json [1m])'),
                        [(S, {"app": "api", "__error__": "JSONParserErr"})], 60 * S, 60 * S, 0)
    assert raised.value.construct == "pipeline error"
    assert "__error__" in raised.value.detail


def test_too_many_steps_are_refused_as_in_loki():
    with pytest.raises(LogQLError, match="maximum resolution"):
        step_count(0, MAX_POINTS_PER_SERIES * S, S)
    assert step_count(0, (MAX_POINTS_PER_SERIES - 1) * S, S) == MAX_POINTS_PER_SERIES


@pytest.mark.parametrize(("start", "end", "step"), [(10, 0, 1), (0, 10, 0), (0, 10, -1)])
def test_an_invalid_step_or_interval_is_refused(start, end, step):
    with pytest.raises(LogQLError):
        step_count(start, end, step)


def test_the_read_bounds_reach_back_one_range_before_start():
    query = parse('sum by (level) (rate({app="api"}[5m]))')
    assert read_bounds(query, 600 * S, 900 * S) == (300 * S, 900 * S)


def naive_counts(timestamps, start, step, steps, range_ns):
    counts = []
    for k in range(steps):
        t = start + k * step
        count = sum(1 for ts in timestamps if t - range_ns < ts <= t)
        if count:
            counts.append((k, count))
    return counts


@settings(max_examples=300, deadline=None)
@given(
    timestamps=st.lists(st.integers(min_value=-50, max_value=250), max_size=60),
    start=st.integers(min_value=0, max_value=100),
    step=st.integers(min_value=1, max_value=30),
    steps=st.integers(min_value=1, max_value=40),
    range_ns=st.integers(min_value=1, max_value=100),
)
def test_the_window_counts_equal_the_naive_count(timestamps, start, step, steps, range_ns):
    # Both strategies run: fewer lines than steps (per line) and at least as many (per step).
    assert _window_counts(list(timestamps), start, step, steps, range_ns) == naive_counts(
        timestamps, start, step, steps, range_ns)


# ----------------------------------------------------------------------------- constant expressions


def test_grafanas_save_and_test_query_is_two():
    expr = parse("vector(1)+vector(1)")
    assert evaluate_constant(expr) == 2
    assert format_value(evaluate_constant(expr)) == "2"
    assert not is_scalar(expr)


@pytest.mark.parametrize(("query", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("8 / 2 / 2", 2), ("1 - 2 - 3", -4), ("vector(3) / 2", 1.5),
])
def test_arithmetic_follows_precedence_and_associativity(query, value):
    assert evaluate_constant(parse(query)) == value


def test_division_by_zero_is_ieee_as_in_prometheus():
    assert evaluate_constant(parse("1 / 0")) == math.inf
    assert evaluate_constant(parse("-1 / 0")) == -math.inf
    assert math.isnan(evaluate_constant(parse("0 / 0")))


def test_numbers_alone_are_a_scalar():
    assert is_scalar(parse("1 + 1"))


@pytest.mark.parametrize(("value", "text"), [
    (2.0, "2"), (2, "2"), (0.5, "0.5"), (1 / 3, "0.3333333333333333"), (1e21, "1000000000000000000000"),
    (1e-7, "0.0000001"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (100.0, "100"),
])
def test_values_are_written_as_prometheus_writes_them(value, text):
    assert format_value(value) == text


KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k not in STREAM)
VALUES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffd"), min_size=1, max_size=20)


def logfmt_value(value: str) -> str:
    plain = all(c > " " and c not in '="\\' for c in value)
    return value if plain else json.dumps(value, ensure_ascii=False)


@settings(max_examples=100, deadline=None)
@given(pairs=st.dictionaries(KEYS, VALUES, max_size=8))
def test_logfmt_reads_back_the_pairs_a_logfmt_writer_wrote(pairs):
    line = " ".join(f"{key}={logfmt_value(value)}" for key, value in pairs.items())
    assert labels_after('{app="api"} | logfmt --strict', line) == {**STREAM, **pairs}


@settings(max_examples=100, deadline=None)
@given(fields=st.dictionaries(KEYS, VALUES, max_size=8))
def test_json_reads_back_a_flat_objects_string_fields(fields):
    assert labels_after('{app="api"} | json', json.dumps(fields)) == {**STREAM, **fields}
