"""GET / and GET /ui/{file}: the browser UI's static files, a fixed list of them, with headers that
keep the page to its own origin and let browsers revalidate instead of refetching."""

from __future__ import annotations

import re

import pytest

from api.ui import CONTENT_SECURITY_POLICY, UI_DIR, UI_FILES
from common.settings import Settings
from tests.unit.api_harness import build


@pytest.fixture(scope="module")
def client():
    return build().client


def test_the_root_serves_the_page_as_html(client):
    response = client.simulate_get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == (UI_DIR / "index.html").read_bytes()
    assert '<script type="module" src="/ui/app.js">' in response.text


@pytest.mark.parametrize("name, content_type", [
    ("app.js", "text/javascript; charset=utf-8"),
    ("virtual-list.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("index.html", "text/html; charset=utf-8"),
])
def test_each_file_has_its_own_content_type(client, name, content_type):
    response = client.simulate_get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == (UI_DIR / name).read_bytes()


def test_every_listed_file_is_served(client):
    assert {name: client.simulate_get(f"/ui/{name}").status_code for name in UI_FILES} == dict.fromkeys(UI_FILES, 200)


def test_every_file_of_the_ui_directory_is_listed():
    assert sorted(path.name for path in UI_DIR.iterdir() if path.is_file()) == sorted(UI_FILES)


@pytest.mark.parametrize("path", ["/", "/ui/app.js", "/ui/style.css"])
def test_the_page_is_confined_to_its_own_origin(client, path):
    headers = client.simulate_get(path).headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert headers["x-content-type-options"] == "nosniff"


def test_no_file_holds_inline_script_or_style_or_a_remote_url():
    for name in UI_FILES:
        text = (UI_DIR / name).read_text()
        assert "http://" not in text and "https://" not in text, name
        if name.endswith(".html"):
            assert "<script>" not in text and "<style" not in text and " style=" not in text, name
            assert not re.search(r"<[^>]+\son[a-z]+=", text), f"{name}: an inline event handler"


def test_the_page_is_revalidated_on_every_load_and_the_modules_are_cached_briefly(client):
    assert client.simulate_get("/").headers["cache-control"] == "no-cache"
    cache = client.simulate_get("/ui/app.js").headers["cache-control"]
    assert "max-age=60" in cache and "must-revalidate" in cache


def test_a_matching_etag_answers_304_without_a_body(client):
    etag = client.simulate_get("/ui/app.js").headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    response = client.simulate_get("/ui/app.js", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert client.simulate_get("/ui/app.js", headers={"If-None-Match": '"other"'}).status_code == 200


def test_files_have_different_etags(client):
    assert client.simulate_get("/ui/app.js").headers["etag"] != client.simulate_get("/ui/api.js").headers["etag"]


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapi%2Fapp.py", "app.py", ".env", "index.htm"])
def test_a_file_off_the_list_is_404_in_the_error_shape(client, name):
    response = client.simulate_get(f"/ui/{name}")
    assert response.status_code == 404
    assert set(response.json) == {"message", "detail"}
    assert "content-security-policy" not in response.headers


def test_a_nested_path_is_404(client):
    assert client.simulate_get("/ui/sub/app.js").status_code == 404


def test_the_ui_needs_no_token_while_the_reads_do():
    client = build(Settings(query_token="secret")).client
    assert client.simulate_get("/").status_code == 200
    assert client.simulate_get("/ui/app.js").status_code == 200
    assert client.simulate_get("/namespaces").status_code == 401
