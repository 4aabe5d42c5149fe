"""Loki's tenant header, X-Scope-OrgID, for a deployment that serves one tenant.

A deployment (its keyspace, its queue) holds one tenant's logs. With TENANT_ID set, every Loki
request must name that tenant: a request for another one could only read or write the wrong
tenant's lines, so it is refused (401 without the header, 403 with another tenant's). Without
TENANT_ID the header is accepted and not checked, as a single-tenant Loki does. Several tenants are
several deployments (README, "Multi-tenancy").
"""

from __future__ import annotations

import hmac

import falcon

TENANT_HEADER = "X-Scope-OrgID"


class TenantCheck:
    """Falcon middleware for the routes under `prefix`."""

    def __init__(self, tenant_id: str, prefix: str):
        self._tenant = tenant_id.encode()
        self._prefix = prefix

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self._tenant or not req.path.startswith(self._prefix):
            return
        presented = req.get_header(TENANT_HEADER)
        if presented is None:
            raise falcon.HTTPUnauthorized(
                title="No tenant", description=f"this server serves one tenant: send {TENANT_HEADER}",
                challenges=[TENANT_HEADER],
            )
        if not hmac.compare_digest(presented.strip().encode(), self._tenant):
            raise falcon.HTTPForbidden(
                title="Unknown tenant",
                description=f"{TENANT_HEADER} names a tenant this server does not serve (TENANT_ID)",
            )
