"""Every error leaves the API as {"message", "detail"}: what went wrong and what to do about it."""

from __future__ import annotations

import logging

import falcon

log = logging.getLogger(__name__)


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    resp.media = {"message": error.title, "detail": error.description or ""}
    resp.content_type = falcon.MEDIA_JSON


def handle_unexpected(req: falcon.Request, resp: falcon.Response, error: Exception, params) -> None:
    if isinstance(error, falcon.HTTPError):
        raise error
    log.exception("event=unhandled_error method=%s path=%s", req.method, req.path)
    raise falcon.HTTPInternalServerError(
        title="Internal server error", description=f"{type(error).__name__}; see the server log"
    )


def unavailable(what: str, detail: str, retry_after: int) -> falcon.HTTPServiceUnavailable:
    return falcon.HTTPServiceUnavailable(title=f"{what} unavailable", description=detail,
                                         retry_after=retry_after)
