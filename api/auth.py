"""Optional bearer-token authentication: one token for ingest, one for queries.

fluent-bit sends it with `header Authorization Bearer <token>`. Tokens are compared in constant
time and never logged. The health probe and /metrics stay open for Kubernetes and Prometheus;
the profiling routes take the query token.
"""

from __future__ import annotations

import hmac

import falcon


class BearerAuth:
    def __init__(self, tokens: dict[tuple[str, str], str]):
        """tokens: (method, route) -> token; routes without a token (or with "") are open."""
        self._tokens = {key: token.encode() for key, token in tokens.items() if token}

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        expected = self._tokens.get((req.method, req.uri_template))
        if expected is None:
            return
        scheme, _, presented = (req.auth or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            raise falcon.HTTPUnauthorized(
                title="Authentication required",
                description=f"{req.method} {req.uri_template} needs the header 'Authorization: Bearer <token>'",
                challenges=["Bearer"],
            )
