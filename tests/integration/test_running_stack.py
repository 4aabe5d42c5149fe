"""The processes `make up` started (API on :8080, one worker), driven over HTTP like the seed's curl examples."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.integration.pipeline import unique
from tests.records import fluent_bit_record
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

API = os.environ.get("TEST_API_URL", "http://127.0.0.1:8080")


def http(method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(API + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except urllib.error.URLError as error:
        pytest.fail(f"the API started by `make up` is not answering on {API}: {error}")


def test_the_running_stack_is_healthy():
    assert http("GET", "/write") == (200, {"healthy": True, "detail": ""})


def test_a_posted_line_is_returned_by_query_once_the_worker_has_written_it():
    pod = unique("nginx-deployment")
    record = fluent_bit_record("default", pod, "nginx", time="2018-05-07T00:00:00.1Z", log="GET /index.html 200",
                               date=1525651200.1)
    assert http("POST", "/write", json.dumps([record]).encode())[0] == 200

    query = "/query?" + urllib.parse.urlencode({
        "namespace": "default", "pod_name": pod, "container_name": "nginx",
        "start_time": "2018-05-07T00:00:00.000Z", "end_time": "2018-05-07T00:01:00.000Z"})
    def stored() -> tuple[int, dict] | None:
        status, document = http("GET", query)
        return (status, document) if document.get("log_rows") else None

    status, document = wait_for(stored, timeout=30, interval=0.2, what="the posted line in GET /query")
    assert status == 200
    assert document == {"log_rows": [{"time": "2018-05-07T00:00:00.1Z", "log": "GET /index.html 200"}]}
