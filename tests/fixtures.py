"""Real fluent-bit request bodies, shared by every test that needs one.

The captures are data kept in the repository, in tests/data/fluent-bit (see its README.md): one
folder per fluent-bit output configuration, each with `body` (the exact bytes fluent-bit 5.1.1
sent) and `headers.json`. tests/data/loki-push holds the same for Loki push clients.
A missing directory is an error, never a skip: a test that silently skips its real input proves
nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
FLUENT_BIT_DIR = DATA_DIR / "fluent-bit"


class FixtureMissing(FileNotFoundError):
    """A fluent-bit capture the tests rely on is not where it should be."""


def _capture_dir(name: str) -> Path:
    root = FLUENT_BIT_DIR.resolve()
    if not root.is_dir():
        raise FixtureMissing(
            f"fluent-bit fixtures directory not found: {root} "
            "(expected tests/data/fluent-bit in the repository)"
        )
    folder = root / name
    if not folder.is_dir():
        available = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
        raise FixtureMissing(f"no fluent-bit capture named {name!r} in {root}; available: {available}")
    return folder


def fluent_bit_body(name: str) -> bytes:
    """The exact bytes fluent-bit sent for capture `name` (e.g. "json", "notime_double")."""
    path = _capture_dir(name) / "body"
    if not path.is_file():
        raise FixtureMissing(f"fluent-bit capture {name!r} has no body file: {path}")
    return path.read_bytes()


def fluent_bit_headers(name: str) -> dict[str, str]:
    """The HTTP headers fluent-bit sent with capture `name`."""
    path = _capture_dir(name) / "headers.json"
    if not path.is_file():
        raise FixtureMissing(f"fluent-bit capture {name!r} has no headers.json: {path}")
    return json.loads(path.read_text())


LOKI_PUSH_DIR = DATA_DIR / "loki-push"
# client/configuration: every capture in tests/data/loki-push (see its README.md).
LOKI_PUSH_CAPTURES = (
    "fluent-bit/raw", "fluent-bit/raw_gzip", "fluent-bit/json_line", "fluent-bit/key_value",
    "fluent-bit/structured_tenant", "promtail/docker_stage",
)
# The headers of a capture that say how to read its body (the rest describe the connection).
LOKI_PUSH_HEADERS = ("Content-Type", "Content-Encoding", "X-Scope-OrgID")


def loki_push_capture(name: str) -> tuple[bytes, dict[str, str]]:
    """The exact body a Loki push client sent for capture `name` ("fluent-bit/raw"), and the
    headers of it that the server reads (LOKI_PUSH_HEADERS)."""
    folder = LOKI_PUSH_DIR / name
    if not (folder / "body").is_file() or not (folder / "headers.json").is_file():
        raise FixtureMissing(f"Loki push capture {name!r} not found in {LOKI_PUSH_DIR} (body and headers.json)")
    headers = json.loads((folder / "headers.json").read_text())["headers"]
    return (folder / "body").read_bytes(), {k: v for k, v in headers.items() if k in LOKI_PUSH_HEADERS}
