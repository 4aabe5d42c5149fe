"""Serving an app with waitress (the production server) on a free local port, in a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import waitress
from waitress import wasyncore


@contextlib.contextmanager
def waitress_serving(app, threads: int = 4) -> Iterator[str]:
    """The app on http://127.0.0.1:<free port> for the duration of the block."""
    with running(waitress.create_server(app, host="127.0.0.1", port=0, threads=threads, ident="test")) as url:
        yield url


@contextlib.contextmanager
def running(server) -> Iterator[str]:
    """A waitress server (from waitress.create_server or api.server.create_server) run in a
    thread for the duration of the block; yields its URL."""
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        wasyncore.close_all(server._map)  # every connection, then the listener: the loop ends
        thread.join(timeout=5)
        server.task_dispatcher.shutdown(timeout=5)
