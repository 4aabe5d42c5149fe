"""X-Scope-OrgID on the Loki routes: checked against TENANT_ID when one is set, accepted otherwise."""

from __future__ import annotations

import falcon
import falcon.testing

from api.errors import serialize_error
from api.tenancy import TenantCheck


class Echo:
    def on_get(self, req, resp):
        resp.media = {"ok": True}


def client(tenant_id: str) -> falcon.testing.TestClient:
    app = falcon.App(middleware=[TenantCheck(tenant_id, "/loki/")])
    app.set_error_serializer(serialize_error)
    app.add_route("/loki/api/v1/labels", Echo())
    app.add_route("/query", Echo())
    return falcon.testing.TestClient(app)


def test_without_a_tenant_setting_any_org_id_or_none_is_accepted():
    assert client("").simulate_get("/loki/api/v1/labels", headers={"X-Scope-OrgID": "anyone"}).status_code == 200
    assert client("").simulate_get("/loki/api/v1/labels").status_code == 200


def test_the_configured_tenant_is_served():
    response = client("team-a").simulate_get("/loki/api/v1/labels", headers={"X-Scope-OrgID": "team-a"})
    assert response.status_code == 200


def test_another_tenant_gets_403_and_reads_nothing():
    response = client("team-a").simulate_get("/loki/api/v1/labels", headers={"X-Scope-OrgID": "team-b"})
    assert response.status_code == 403
    assert response.json["message"] == "Unknown tenant"


def test_no_org_id_gets_401_when_a_tenant_is_set():
    response = client("team-a").simulate_get("/loki/api/v1/labels")
    assert response.status_code == 401
    assert "X-Scope-OrgID" in response.json["detail"]


def test_the_native_api_is_not_checked():
    assert client("team-a").simulate_get("/query").status_code == 200
