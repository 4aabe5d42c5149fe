"""Serving the app with waitress."""

from __future__ import annotations

import logging

import waitress

from api.app import build_app
from common.gc_tuning import tune_for_service
from common.settings import Settings

log = logging.getLogger(__name__)


def create_server(app, settings: Settings, *, host: str | None = None, port: int | None = None):
    """The waitress server for `app` as production runs it (`host`/`port` default to the settings');
    `.run()` serves until the process ends."""
    return waitress.create_server(
        app,
        host=settings.ip if host is None else host,
        port=settings.port if port is None else port,
        threads=settings.api_threads,
        # waitress answers 413 itself for a declared Content-Length above the limit, before
        # reading the body, and cuts a chunked body off at the limit; larger bodies are never
        # buffered whole. waitress refuses a body *of* its limit, hence + 1.
        max_request_body_size=settings.max_body_bytes + 1,
        # Bodies up to 4 MiB stay in memory; waitress's default (512 KiB) sent a typical
        # fluent-bit batch through a temporary file.
        inbuf_overflow=4 * 2**20,
        # A streamed answer (NDJSON, text, /tail) waits for a slow client once 1 MiB is
        # unsent, instead of piling up waitress's default 16 MiB per connection.
        outbuf_high_watermark=2**20,
        # Read ahead one request, so an open /tail learns at once that its client hung up.
        channel_request_lookahead=1,
        ident="kube-insight-logserver",
    )


def run_api(settings: Settings) -> None:
    app, store = build_app(settings)
    tune_for_service()
    server = create_server(app, settings)
    log.info("event=api_listening ip=%s port=%d threads=%d", settings.ip, settings.port, settings.api_threads)
    try:
        server.run()
    finally:
        store.close()
