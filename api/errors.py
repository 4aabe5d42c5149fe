"""Every error leaves the API as {"message", "detail"}: what went wrong and what to do about it."""

from __future__ import annotations

import logging

import falcon

from common.errors import ParameterError
from common.log_store import StoreUnavailable
from common.queue import QueueFull, QueueUnavailable

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


def register_error_handlers(app: falcon.App, retry_after_seconds: int) -> None:
    """One error contract for every resource: they raise domain errors and map none. Falcon picks
    the most specific handler, so these win over the catch-all for their types."""

    def bad_parameter(req, resp, error: ParameterError, params) -> None:
        raise falcon.HTTPBadRequest(title=f"Invalid parameter '{error.param}'", description=error.detail)

    def store_unavailable(req, resp, error: StoreUnavailable, params) -> None:
        raise unavailable("Cassandra", str(error), retry_after_seconds)

    def queue_unavailable(req, resp, error: QueueUnavailable, params) -> None:
        log.warning("event=queue_unavailable method=%s path=%s error=%s", req.method, req.path, error)
        raise unavailable("Redis", str(error), retry_after_seconds)

    def queue_full(req, resp, error: QueueFull, params) -> None:
        raise unavailable("Queue", f"ingest is backed up ({error}); retry later", retry_after_seconds)

    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(ParameterError, bad_parameter)
    app.add_error_handler(StoreUnavailable, store_unavailable)
    app.add_error_handler(QueueUnavailable, queue_unavailable)
    app.add_error_handler(QueueFull, queue_full)
