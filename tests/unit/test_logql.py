"""common.logql.parse: the LogQL subset Grafana and logcli send, to an AST; anything else refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

import common.logql
from common.errors import ParameterError
from common.logql import (
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
    is_metric_query,
    log_query_of,
    parse,
    parse_bytes,
    parse_duration,
    parse_range,
    selector_equalities,
    selector_label_names,
)

S = 1_000_000_000
APP = Matcher("app", "=", "api")
APP_SELECTOR = Selector((APP,))


def logs(*stages, selector=APP_SELECTOR) -> LogQuery:
    return LogQuery(selector, tuple(stages))


VALID = [
    # stream selectors
    ('{app="api"}', logs()),
    ('{app="api", namespace!="kube-system", pod=~"api-.*", container!~"istio.*"}', logs(selector=Selector((
        APP, Matcher("namespace", "!=", "kube-system"), Matcher("pod", "=~", "api-.*"),
        Matcher("container", "!~", "istio.*"))))),
    ('{app=~".+"}', logs(selector=Selector((Matcher("app", "=~", ".+"),)))),
    ('{app="", pod="x"}', logs(selector=Selector((Matcher("app", "=", ""), Matcher("pod", "=", "x"))))),
    ('  {  app = "api"  }  ', logs()),
    ('({app="api"})', logs()),
    # strings: escapes and raw strings
    ('{app="api"} |= "a\\"b\\\\c\\td\\n"', logs(LineFilter("|=", 'a"b\\c\td\n'))),
    ('{app="api"} |= "\\x41\\101\\u00e9\\U0001F600"', logs(LineFilter("|=", "AAé\U0001F600"))),
    ('{app="api"} |~ `\\d+ "quoted"`', logs(LineFilter("|~", '\\d+ "quoted"'))),
    ('{app="api"} |= "é"', logs(LineFilter("|=", "é"))),
    # chained line filters
    ('{app="api"} |= "GET" != "health" |~ "5\\\\d\\\\d" !~ "(?i)bot"', logs(
        LineFilter("|=", "GET"), LineFilter("!=", "health"), LineFilter("|~", "5\\d\\d"),
        LineFilter("!~", "(?i)bot"))),
    ('{app="api"}|="x"', logs(LineFilter("|=", "x"))),
    # comments and newlines
    ('{app="api"} # the API\n |= "x" # only x\n', logs(LineFilter("|=", "x"))),
    # parsers
    ('{app="api"} | json', logs(Parser("json"))),
    ('{app="api"} | JSON', logs(Parser("json"))),
    ('{app="api"} | logfmt', logs(Parser("logfmt"))),
    ('{app="api"} | logfmt --strict --keep-empty', logs(Parser("logfmt", strict=True, keep_empty=True))),
    # label filters
    ('{app="api"} | json | level="error"', logs(Parser("json"), LabelFilter("level", "=", "error"))),
    ('{app="api"} | level != "debug" | level=~"err.*" | level!~`warn|info`', logs(
        LabelFilter("level", "!=", "debug"), LabelFilter("level", "=~", "err.*"),
        LabelFilter("level", "!~", "warn|info"))),
    ('{app="api"} | status >= 400', logs(LabelFilter("status", ">=", 400.0, "number"))),
    ('{app="api"} | status = 200', logs(LabelFilter("status", "==", 200.0, "number"))),
    ('{app="api"} | status == 200', logs(LabelFilter("status", "==", 200.0, "number"))),
    ('{app="api"} | status = "200"', logs(LabelFilter("status", "=", "200", "string"))),
    ('{app="api"} | delta < -1.5', logs(LabelFilter("delta", "<", -1.5, "number"))),
    ('{app="api"} | n != 1e3', logs(LabelFilter("n", "!=", 1000.0, "number"))),
    ('{app="api"} | latency > 250ms', logs(LabelFilter("latency", ">", 250_000_000, "duration"))),
    ('{app="api"} | latency <= 1h30m', logs(LabelFilter("latency", "<=", 5400 * S, "duration"))),
    ('{app="api"} | latency > 1.5s', logs(LabelFilter("latency", ">", 1_500_000_000, "duration"))),
    ('{app="api"} | size > 10KB', logs(LabelFilter("size", ">", 10_000, "bytes"))),
    ('{app="api"} | size < 1MiB', logs(LabelFilter("size", "<", 1 << 20, "bytes"))),
    ('{app="api"} | a="1" and b="2", c="3" d="4"', logs(
        LabelFilter("a", "=", "1"), LabelFilter("b", "=", "2"), LabelFilter("c", "=", "3"),
        LabelFilter("d", "=", "4"))),
    ('{app="api"} | a="1" or b="2" and c="3"', logs(LabelFilterOr((
        LabelFilter("a", "=", "1"), LabelFilterAnd((LabelFilter("b", "=", "2"), LabelFilter("c", "=", "3"))))))),
    ('{app="api"} | (a="1" or b="2") c="3"', logs(
        LabelFilterOr((LabelFilter("a", "=", "1"), LabelFilter("b", "=", "2"))), LabelFilter("c", "=", "3"))),
    ('{app="api"} | json | __error__=""', logs(Parser("json"), LabelFilter("__error__", "=", ""))),
    # line_format
    ('{app="api"} | line_format "{{.level}}: {{ .msg }}"', logs(
        LineFormat("{{.level}}: {{ .msg }}", ((True, "level"), (False, ": "), (True, "msg"))))),
    ('{app="api"} | line_format `plain`', logs(LineFormat("plain", ((False, "plain"),)))),
    # drop and keep
    ('{app="api"} | json | drop __error__, __error_details__', logs(
        Parser("json"), DropLabels(("__error__", "__error_details__")))),
    ('{app="api"} | drop level="debug", pod', logs(DropLabels((Matcher("level", "=", "debug"), "pod")))),
    ('{app="api"} | keep level, pod=~"api.*"', logs(KeepLabels(("level", Matcher("pod", "=~", "api.*"))))),
    # metric queries
    ('count_over_time({app="api"}[5m])', RangeAggregation("count_over_time", logs(), 300 * S)),
    ('rate({app="api"} |= "x" [1m])', RangeAggregation("rate", logs(LineFilter("|=", "x")), 60 * S)),
    ('rate({app="api"}[1m] |= "x")', RangeAggregation("rate", logs(LineFilter("|=", "x")), 60 * S)),
    ('rate(({app="api"} | json)[30s])', RangeAggregation("rate", logs(Parser("json")), 30 * S)),
    ('rate((({app="api"} | json)[30s]))', RangeAggregation("rate", logs(Parser("json")), 30 * S)),
    ('COUNT_OVER_TIME({app="api"}[1h30m])', RangeAggregation("count_over_time", logs(), 5400 * S)),
    ('count_over_time({app="api"}[1d])', RangeAggregation("count_over_time", logs(), 86400 * S)),
    ('count_over_time({app="api"}[1w])', RangeAggregation("count_over_time", logs(), 7 * 86400 * S)),
    ('count_over_time({app="api"}[250ms])', RangeAggregation("count_over_time", logs(), 250_000_000)),
    ('sum by (level) (count_over_time({app="api"} |= "x" [1m]))', VectorAggregation(
        RangeAggregation("count_over_time", logs(LineFilter("|=", "x")), 60 * S), ("level",))),
    ('sum(count_over_time({app="api"}[1m])) by (level, pod)', VectorAggregation(
        RangeAggregation("count_over_time", logs(), 60 * S), ("level", "pod"))),
    ('sum(rate({app="api"}[1m]))', VectorAggregation(RangeAggregation("rate", logs(), 60 * S), ())),
    ('sum by () (rate({app="api"}[1m]))', VectorAggregation(RangeAggregation("rate", logs(), 60 * S), ())),
    ('SUM BY (level) (rate({app="api"}[1m]))', VectorAggregation(RangeAggregation("rate", logs(), 60 * S), ("level",))),
    ('sum by (level) (sum by (level, pod) (rate({app="api"}[1m])))', VectorAggregation(
        VectorAggregation(RangeAggregation("rate", logs(), 60 * S), ("level", "pod")), ("level",))),
    ('(sum by (level) (rate({app="api"}[1m])))', VectorAggregation(RangeAggregation("rate", logs(), 60 * S), ("level",))),
    ('sum by (detected_level) (count_over_time({app="api"} | json | logfmt | drop __error__, __error_details__ [1m]))',
     VectorAggregation(RangeAggregation("count_over_time", logs(
         Parser("json"), Parser("logfmt"), DropLabels(("__error__", "__error_details__"))), 60 * S),
         ("detected_level",))),
    # constant expressions
    ("vector(1)+vector(1)", BinaryOp("+", VectorLiteral(1.0), VectorLiteral(1.0))),
    ("vector(1) + vector(1)", BinaryOp("+", VectorLiteral(1.0), VectorLiteral(1.0))),
    ("1", NumberLiteral(1.0)),
    ("-2.5", NumberLiteral(-2.5)),
    ("1 - -2 * 3", BinaryOp("-", NumberLiteral(1.0), BinaryOp("*", NumberLiteral(-2.0), NumberLiteral(3.0)))),
    ("(1 + 2) / vector(4)", BinaryOp("/", BinaryOp("+", NumberLiteral(1.0), NumberLiteral(2.0)), VectorLiteral(4.0))),
    ("8 / 2 / 2", BinaryOp("/", BinaryOp("/", NumberLiteral(8.0), NumberLiteral(2.0)), NumberLiteral(2.0))),
    ("0x10", NumberLiteral(16.0)),
]


@pytest.mark.parametrize(("query", "expected"), VALID, ids=[q for q, _ in VALID])
def test_a_supported_query_parses_to_its_ast(query, expected):
    assert parse(query) == expected


REFUSED = [
    # (query, construct named by the error, words the message contains)
    ('{app="api"} | pattern "<ip> <_>"', "| pattern", "`| pattern` is not supported"),
    ('{app="api"} | regexp "(?P<x>.)"', "| regexp", "not supported"),
    ('{app="api"} | unpack', "| unpack", "not supported"),
    ('{app="api"} | label_format a=b', "| label_format", "not supported"),
    ('{app="api"} | decolorize', "| decolorize", "not supported"),
    ('sum_over_time({app="api"} | unwrap latency [1m])', "| unwrap", "not supported"),
    ('{app="api"} | json a="b.c"', "| json <parameters>", "not supported"),
    ('{app="api"} | logfmt a, b', "| logfmt <parameters>", "not supported"),
    ('{app="api"} | logfmt --fast', "--fast", "unknown logfmt flag"),
    ('{app="api"} |> "<_> error"', "|>", "not supported"),
    ('{app="api"} !> "<_> error"', "!>", "not supported"),
    ('{app="api"} |= "a" or "b"', '|= "..." or "..."', "not supported"),
    ('{app="api"} |= ip("10.0.0.0/8")', "ip()", "not supported"),
    ('{app="api"} | line_format "{{.a | upper}}"', "line_format", "only `{{.label}}`"),
    ('{app="api"} | line_format "{{if .a}}x{{end}}"', "line_format", "not supported"),
    ('{app="api"} | line_format "{{.a"', "line_format", "unclosed"),
    ('topk(5, sum by (pod) (rate({app="api"}[1m])))', "topk", "`topk` is not supported"),
    ('avg(rate({app="api"}[1m]))', "avg", "`avg` is not supported"),
    ('bytes_over_time({app="api"}[1m])', "bytes_over_time", "not supported"),
    ('label_replace(rate({app="api"}[1m]), "a", "$1", "b", "(.*)")', "label_replace", "not supported"),
    ('frobnicate({app="api"}[1m])', "frobnicate", "unknown function"),
    ('sum without (pod) (rate({app="api"}[1m]))', "without", "not supported"),
    ('count_over_time({app="api"}[5m] offset 1h)', "offset", "not supported"),
    ('count_over_time({app="api"}[1m]) by (pod)', "count_over_time by (...)", "not supported"),
    ('sum(rate({app="api"}[1m])) * 100', "*", "only numbers and vector(n)"),
    ('sum(rate({app="api"}[1m])) or vector(0)', "or", "not supported"),
    ("1 % 2", "%", "not supported"),
    ("2 ^ 3", "^", "not supported"),
    ("1 == 1", "==", "not supported"),
    ("sum(vector(1))", "sum", "metric query"),
    ('vector({app="api"})', "vector", "one number"),
    ('sum({app="api"}[1m])', "sum", "metric query"),
    ('count_over_time({app="api"})', "count_over_time", "needs a range"),
    ('count_over_time(rate({app="api"}[1m]))', "count_over_time", "log query with a range"),
    ('count_over_time({app="api"}[$__interval])', "[$__interval]", "invalid range"),
    ('count_over_time({app="api"}[5 m])', "[5 m]", "invalid range"),
    ('count_over_time({app="api"}[0s])', "[0s]", "longer than zero"),
    ('count_over_time({app="api"}[1.5m])', "[1.5m]", "invalid range"),
    # selectors that match every stream
    ("{}", "stream selector", "at least one regexp or equality matcher"),
    ('{app=""}', "stream selector", "empty-compatible"),
    ('{app=~".*"}', "stream selector", "empty-compatible"),
    ('{app!="x"}', "stream selector", "empty-compatible"),
    ('{app=~"a|"}', "stream selector", "empty-compatible"),
    ('count_over_time({app=~".*"}[1m])', "stream selector", "empty-compatible"),
    # regular expressions RE2 refuses
    ('{app=~"(a"}', 'matcher app=~', "missing )"),
    ('{app="api"} |~ "(?=x)"', "line filter |~", "RE2 syntax"),
    ('{app="api"} | level=~"a)"', "label filter level=~", "unexpected )"),
    ('{app="api"} |~ "' + "a" * 257 + '"', "line filter |~", "longer than 256 characters"),
    # malformed
    ('{app="api"', "end of query", "unexpected end of query"),
    ('{app="api"} |= "x" )', ")", "unexpected `)` at column 20"),
    ('sum by (level) (count_over_time({app="api"}[1m])))', ")", "unexpected `)` at column 50"),
    ('{app="api"}\n| json\n| x="1" )', ")", "at line 3, column 9"),
    ('{app="api"}[5m]', "[5m]", "unexpected `[5m]` at column 12"),
    ("{app='api'}", "'", "unexpected `'` at column 6"),
    ('{app="api"} |= "\\q"', '"\\q"', "invalid escape"),
    ('{app="api"} |= "\\xZZ"', '"\\xZZ"', "invalid escape"),
    ('{app="api"} |= "\\ud800"', '"\\ud800"', "invalid code point"),
    ('{app="api"} |= "\\xff"', '"\\xff"', "not valid UTF-8"),
    ('{app="api"} |= "unterminated', '"', "unexpected"),
    ('{app="api"} | json |', "end of query", "unexpected end of query"),
    ('{app="api"} | status > ', "end of query", "unexpected end of query"),
    ("app", "app", "unexpected `app` at column 1"),
    ("", "query", "is empty"),
    ("   # only a comment", "end of query", "unexpected end of query"),
    ("(" * 70 + "1" + "+1)" * 70, "query", "nested deeper than 64"),
    ("1" + "+1" * 70, "query", "nested deeper than 64"),
    ("{" + "a" * 65537 + "}", "query", "longer than 65536 characters"),
]


@pytest.mark.parametrize(("query", "construct", "words"), REFUSED, ids=[q[:60] for q, _, _ in REFUSED])
def test_a_refused_query_names_the_construct(query, construct, words):
    with pytest.raises(LogQLError) as raised:
        parse(query)
    assert raised.value.construct == construct
    assert words in raised.value.detail


def test_a_refusal_is_a_parameter_error_on_query_so_the_api_answers_400():
    with pytest.raises(ParameterError) as raised:
        parse('{app="api"} | pattern "<_>"')
    assert raised.value.param == "query"
    assert raised.value.detail == "`| pattern` is not supported"


def test_a_malformed_query_says_what_was_expected():
    with pytest.raises(LogQLError) as raised:
        parse('{app="api"')
    assert "expected `,`, `}`" in raised.value.detail


@pytest.mark.parametrize("keyword", ["by", "json", "rate", "sum", "and", "or", "offset"])
def test_keywords_are_label_names_where_a_label_name_is_expected(keyword):
    query = parse(f'sum by ({keyword}) (rate({{{keyword}="x"}}[1m]))')
    assert query.by == (keyword,)


def test_a_function_name_is_a_label_name_where_no_parenthesis_follows():
    assert parse('{app="api"} | rate="fast"') == logs(LabelFilter("rate", "=", "fast"))


def test_log_and_metric_queries_are_told_apart():
    assert not is_metric_query(parse('{app="api"}'))
    assert is_metric_query(parse('rate({app="api"}[1m])'))
    assert is_metric_query(parse("vector(1)+vector(1)"))


def test_the_log_query_of_a_metric_query_is_what_the_store_reads():
    query = parse('sum by (level) (count_over_time({app="api"} |= "x" [1m]))')
    assert log_query_of(query) == logs(LineFilter("|=", "x"))
    assert log_query_of(parse("vector(1)")) is None


def test_a_selector_lists_the_labels_it_needs_and_its_equalities():
    selector = parse('{namespace="default", pod=~"api-.*", app!="x", tier=""}').selector
    assert selector_label_names(selector) == {"namespace", "pod", "app", "tier"}
    assert selector_equalities(selector) == {"namespace": "default"}


@pytest.mark.parametrize(("text", "ns"), [
    ("5m", 300 * S), ("1h30m", 5400 * S), ("30s", 30 * S), ("100ms", 100_000_000), ("2d", 172800 * S),
    ("1y", 365 * 86400 * S), ("1m30s500ms", 90_500_000_000),
])
def test_ranges_are_prometheus_durations(text, ns):
    assert parse_range(text) == ns


@pytest.mark.parametrize("text", ["", "5", "1.5m", "30s5m", "5M", "$__auto", " 5m"])
def test_a_range_that_is_not_a_prometheus_duration_is_refused(text):
    with pytest.raises(LogQLError):
        parse_range(text)


@pytest.mark.parametrize(("text", "ns"), [
    ("1.5s", 1_500_000_000), ("-250ms", -250_000_000), ("1h2m3s", 3723 * S), ("0", 0), ("2us", 2000),
    ("2µs", 2000), ("3ns", 3), (".5m", 30 * S),
])
def test_go_durations_convert_to_nanoseconds(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "1d", "s", "1.5", "1 s", "--1s", "abc"])
def test_text_that_is_not_a_go_duration_converts_to_none(text):
    assert parse_duration(text) is None


def test_logql_duration_literals_also_take_days_and_weeks():
    assert parse_duration("1d", extra_units=True) == 86400 * S


@pytest.mark.parametrize(("text", "size"), [
    ("512", 512), ("10KB", 10_000), ("10kB", 10_000), ("10KiB", 10_240), ("1.5 MB", 1_500_000),
    ("2MiB", 2 << 20), ("1GB", 10**9), ("1,000", 1000), ("3B", 3),
])
def test_byte_sizes_convert_as_go_humanize_reads_them(text, size):
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "KB", "10 XB", "ten", "-1KB"])
def test_text_that_is_not_a_byte_size_converts_to_none(text):
    assert parse_bytes(text) is None


def test_docs_logql_md_carries_the_modules_support_table():
    table = [line for line in common.logql.__doc__.splitlines() if line.startswith("|")]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "logql.md").read_text().splitlines()
    assert len(table) > 20
    assert [line for line in docs if line.startswith("|")] == table
