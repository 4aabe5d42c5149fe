"""GET / and GET /ui/{file}: the browser log explorer, static files read from ui/ once at start.

Only the files named in UI_FILES are served (anything else is 404), each with its own content
type, an ETag for revalidation, and headers that keep the page to its own origin: a strict
Content-Security-Policy (no inline script or style, no other host), nosniff and no framing. The
page holds no data, so these routes take no token; everything it shows comes from the public API,
which does.
"""

from __future__ import annotations

import hashlib
import pathlib

import falcon

UI_DIR = pathlib.Path(__file__).resolve().parent.parent / "ui"
INDEX = "index.html"
UI_PREFIX = "/ui/"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
UI_FILES = (
    INDEX, "app.js", "api.js", "state.js", "virtual-list.js", "ansi.js", "json-fields.js", "tail.js",
    "health.js", "download.js", "style.css",
)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# index.html is revalidated on every load, so a new release shows at once; the modules it loads
# may be reused for a minute, then are revalidated by ETag (a 304 costs no body).
INDEX_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=60, must-revalidate"


class _File:
    def __init__(self, name: str, body: bytes):
        self.body = body
        self.content_type = _TYPES[pathlib.PurePath(name).suffix]
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self.cache_control = INDEX_CACHE if name == INDEX else ASSET_CACHE


def load_files(directory: pathlib.Path = UI_DIR) -> dict[str, _File]:
    """Every allowed file, read now: a missing one fails the start, not a user's page load."""
    return {name: _File(name, (directory / name).read_bytes()) for name in UI_FILES}


class UiResource:
    def __init__(self, files: dict[str, _File] | None = None):
        self._files = load_files() if files is None else files

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(INDEX, req, resp)

    def on_get_file(self, req: falcon.Request, resp: falcon.Response, file: str) -> None:
        self._serve(file, req, resp)

    def _serve(self, name: str, req: falcon.Request, resp: falcon.Response) -> None:
        found = self._files.get(name)
        if found is None:
            raise falcon.HTTPNotFound(
                title="Not found", description=f"no UI file {name!r}: the UI serves {', '.join(UI_FILES)}")
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("Cache-Control", found.cache_control)
        resp.set_header("ETag", found.etag)
        if found.etag in (req.get_header("If-None-Match") or "").replace(" ", "").split(","):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = found.content_type
        resp.data = found.body
