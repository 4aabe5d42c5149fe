"""GET /openapi.json: the API's contract, which names exactly what the app serves."""

from __future__ import annotations

from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from api.app import LOKI_BUILDINFO_PATH, LOKI_FORMAT_QUERY_PATH, LOKI_POST_PATHS, QUERY_PATHS
from api.openapi import OPENAPI_PATH, openapi_document
from common.settings import Settings
from tests.unit.api_harness import build

# Documented, but the app does not serve them yet: whoever lands one removes it from here.
NOT_YET_SERVED: set[tuple[str, str]] = set()
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def served_routes(app) -> set[tuple[str, str]]:
    """(method, route) for every responder a resource defines (Falcon's own defaults left out)."""
    routes = set()
    nodes = list(app._router._roots)
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        if node.resource is None:
            continue
        for method, responder in node.method_map.items():
            if getattr(responder, "__self__", None) is node.resource:
                routes.add((method, node.uri_template))
    return routes


def documented_routes(document: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_the_document_is_served_as_json_without_a_token():
    harness = build(Settings(ingest_token="in", query_token="out"))
    response = harness.client.simulate_get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json["openapi"] == "3.1.0"
    assert response.json == openapi_document(Settings(ingest_token="in", query_token="out"))


def test_the_document_is_valid_openapi():
    document = openapi_document(Settings())
    errors = ["/".join(map(str, error.instance_path)) + ": " + error.message
              for error in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert document["openapi"].startswith("3.1.") and errors == []


def test_the_document_describes_exactly_the_routes_the_app_serves():
    served = served_routes(build().client.app)
    documented = documented_routes(openapi_document(Settings()))
    assert served == documented - NOT_YET_SERVED
    assert not NOT_YET_SERVED & served, "now served: remove it from NOT_YET_SERVED"


def test_every_error_answer_is_documented_with_the_message_and_detail_shape():
    document = openapi_document(Settings())
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["message", "detail"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith("4") or (status == "503" and path not in ("/write", "/ready")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    # GET /write and GET /ready answer 503 with their own probe document instead.
    assert "healthy" in document["paths"]["/write"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]["properties"]


def test_a_503_while_ingesting_documents_retry_after():
    write = openapi_document(Settings())["paths"]["/write"]["post"]
    assert "Retry-After" in write["responses"]["503"]["headers"]


def test_the_per_line_limit_is_documented_as_truncation_at_the_configured_size():
    write = openapi_document(Settings(max_line_bytes=4096))["paths"]["/write"]["post"]
    assert "MAX_LINE_BYTES (4096 bytes)" in write["description"]
    assert "truncated" in write["description"] and "not rejected" in write["description"]


def test_exactly_the_endpoints_that_take_a_token_document_one():
    document = openapi_document(Settings())
    secured = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "security" in operation
    }
    assert secured == {("POST", "/write"), ("POST", "/loki/api/v1/push"), *(("GET", path) for path in QUERY_PATHS),
                       *(("POST", path) for path in LOKI_POST_PATHS), ("GET", LOKI_BUILDINFO_PATH),
                       ("GET", LOKI_FORMAT_QUERY_PATH), ("POST", LOKI_FORMAT_QUERY_PATH)}


def test_the_loki_push_documents_429_and_503_with_retry_after():
    push = openapi_document(Settings())["paths"]["/loki/api/v1/push"]["post"]
    assert "Retry-After" in push["responses"]["429"]["headers"]
    assert "Retry-After" in push["responses"]["503"]["headers"]
    assert set(push["requestBody"]["content"]) == {"application/json", "application/x-protobuf"}
