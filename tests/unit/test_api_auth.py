"""Optional bearer tokens: ingest and query each need their own when configured."""

from __future__ import annotations

import base64

import pytest

from common.settings import Settings
from tests.records import kubernetes
from tests.unit.api_harness import build

RECORD = [{"kubernetes": kubernetes("n", "p", "c"), "date": 1.0}]
QUERY = {"namespace": "n", "pod_name": "p", "container_name": "c", "start_time": "2024-01-01T00:00:00Z",
         "end_time": "2024-01-01T01:00:00Z"}
SECURED = Settings(ingest_token="in-secret", query_token="q-secret")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_without_tokens_configured_everything_is_open():
    harness = build()
    assert harness.client.simulate_post("/write", json=RECORD).status_code == 200
    assert harness.client.simulate_get("/query", params=QUERY).status_code == 200


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": "Basic in-secret"}, bearer("q-secret")])
def test_ingest_without_its_token_gets_401(headers):
    response = build(SECURED).client.simulate_post("/write", json=RECORD, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert set(response.json) == {"message", "detail"}


def test_ingest_with_its_token_is_accepted():
    assert build(SECURED).client.simulate_post("/write", json=RECORD, headers=bearer("in-secret")).status_code == 200


@pytest.mark.parametrize("headers", [{}, bearer("in-secret")])
def test_query_without_its_token_gets_401(headers):
    assert build(SECURED).client.simulate_get("/query", params=QUERY, headers=headers).status_code == 401


def test_query_with_its_token_answers():
    assert build(SECURED).client.simulate_get("/query", params=QUERY, headers=bearer("q-secret")).status_code == 200


@pytest.mark.parametrize("path", ["/write", "/metrics"])
def test_health_and_metrics_stay_open(path):
    assert build(SECURED).client.simulate_get(path).status_code == 200


def test_tokens_never_appear_in_metrics_or_the_settings_repr():
    harness = build(SECURED)
    harness.client.simulate_post("/write", json=RECORD, headers=bearer("in-secret"))
    text = harness.client.simulate_get("/metrics").text + repr(SECURED)
    assert "in-secret" not in text and "q-secret" not in text


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_carries_the_token_as_its_password_whatever_the_user():
    harness = build(Settings(query_token="q-secret"))
    response = harness.client.simulate_get("/namespaces", headers=basic("grafana", "q-secret"))
    assert response.status_code == 200


def test_basic_auth_with_another_password_gets_401():
    harness = build(Settings(query_token="q-secret"))
    assert harness.client.simulate_get("/namespaces", headers=basic("q-secret", "wrong")).status_code == 401


@pytest.mark.parametrize("authorization", ["Basic not-base64!", "Basic " + base64.b64encode(b"no-colon").decode(),
                                           "Digest q-secret"])
def test_malformed_or_other_credentials_get_401(authorization):
    harness = build(Settings(query_token="q-secret"))
    response = harness.client.simulate_get("/namespaces", headers={"Authorization": authorization})
    assert response.status_code == 401
