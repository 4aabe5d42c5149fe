"""GET /loki/api/v1/format_query's formatter (common/logql_format.py): every supported query written
back parses to the same AST, the text is canonical (formatting it again changes nothing), and the
endpoint answers in Loki's shape."""

from __future__ import annotations

import pytest

from common.logql import parse
from common.logql_format import format_query
from tests.unit.api_harness import build
from tests.unit.test_logql import VALID


@pytest.mark.parametrize("text", [q for q, _ in VALID], ids=[q for q, _ in VALID])
def test_a_formatted_query_parses_back_to_the_same_ast(text):
    query = parse(text)
    formatted = format_query(query)
    assert parse(formatted) == query
    assert format_query(parse(formatted)) == formatted


@pytest.mark.parametrize("text, formatted", [
    ('{app="web",tier=~"a|b"}|="x"!~`y\\d`|json', '{app="web", tier=~"a|b"} |= "x" !~ "y\\\\d" | json'),
    ('sum by(level)(count_over_time({app="web"}|logfmt[300s]))',
     'sum by (level) (count_over_time({app="web"} | logfmt [5m]))'),
    ('{app="web"} | duration > 1500ms or size <= 10KB and level="error"',
     '{app="web"} | duration > 1500ms or size <= 10000B and level="error"'),
    ("vector(1)+vector(1)", "vector(1) + vector(1)"),
    ('{app="web"} | line_format "{{.msg}}\\n" | drop __error__, a="b"',
     '{app="web"} | line_format "{{.msg}}\\n" | drop __error__, a="b"'),
])
def test_queries_are_written_with_lokis_spacing(text, formatted):
    assert format_query(parse(text)) == formatted


def test_the_endpoint_answers_in_lokis_shape():
    response = build().client.simulate_get("/loki/api/v1/format_query", params={"query": '{app="web"}|="x"'})
    assert response.status_code == 200
    assert response.json == {"status": "success", "data": '{app="web"} |= "x"'}


def test_a_query_the_server_refuses_is_400_naming_it():
    response = build().client.simulate_get("/loki/api/v1/format_query", params={"query": '{app="web"} | pattern "<_>"'})
    assert response.status_code == 400 and "pattern" in response.json["detail"]
