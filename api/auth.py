"""Optional token authentication: one token for ingest, one for queries.

fluent-bit sends it with `header Authorization Bearer <token>`. HTTP basic auth carries the same
token as its password, whatever the user name: Grafana's data sources, Promtail, Alloy and
fluent-bit's `loki` output offer basic auth. Tokens are compared in constant time and never
logged. The health probe and /metrics stay open for Kubernetes and Prometheus; the profiling
routes take the query token.
"""

from __future__ import annotations

import base64
import binascii
import hmac

import falcon


def presented_token(authorization: str | None) -> bytes | None:
    """The token of `Authorization: Bearer <token>` or of basic auth's password; None if neither."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip().encode()
    if scheme.lower() == "basic":
        try:
            user_and_password = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        _, colon, password = user_and_password.partition(b":")
        return password if colon else None
    return None


class BearerAuth:
    def __init__(self, tokens: dict[tuple[str, str], str]):
        """tokens: (method, route) -> token; routes without a token (or with "") are open."""
        self._tokens = {key: token.encode() for key, token in tokens.items() if token}

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        expected = self._tokens.get((req.method, req.uri_template))
        if expected is None:
            return
        presented = presented_token(req.auth)
        if presented is None or not hmac.compare_digest(presented, expected):
            raise falcon.HTTPUnauthorized(
                title="Authentication required",
                description=f"{req.method} {req.uri_template} needs the header 'Authorization: Bearer <token>' "
                            "(or basic auth with the token as password)",
                challenges=["Bearer"],
            )
