"""GET /loki/api/v1/tail on the real Redis and Cassandra: the production server (api/server.py, with
its upgrade channel and stall cut) on a free port, a real WebSocket client (websocket-client), lines
pushed through POST /loki/api/v1/push and POST /write, a worker writing them, and the frames read as
Grafana Live and logcli read them."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import time
import urllib.parse

import pytest
import websocket
import wsproto
import wsproto.connection
import wsproto.events

from api.app import create_app
from api.server import create_server
from common.metrics import ApiMetrics
from common.queue import BatchQueue, connect_redis
from common.records import LogRow
from common.timestamps import NS_PER_SECOND, now_ns
from tests.conftest import with_changes
from tests.integration.pipeline import build_pipeline, unique
from tests.fixtures import DATA_DIR
from tests.records import fluent_bit_record
from tests.unit.waitress_server import running
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 20.0
TOKEN = "s3cret"  # the password in the captured logcli handshake
TENANT = "team-a"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Scope-OrgID": TENANT}


def serve(settings, store):
    queue = BatchQueue(connect_redis(settings), settings)
    app = create_app(settings, queue, store, ApiMetrics(queue.status))
    return create_server(app, settings, host="127.0.0.1", port=0)


@pytest.fixture(scope="module")
def open_server(integration_settings, real_store):
    """No tokens, no tenant: the lines' tests."""
    settings = with_changes(integration_settings, queue_name=unique("loki-tail"), tail_poll_seconds=0.2)
    pipeline = build_pipeline(settings, real_store)
    with running(serve(settings, real_store)) as url:
        yield url, pipeline


@pytest.fixture(scope="module")
def guarded_settings(integration_settings):
    """A query token, one tenant, two API threads (so one read slot) and a short stall cut."""
    return with_changes(integration_settings, queue_name=unique("loki-tail-guarded"), tail_poll_seconds=0.2,
                        query_token=TOKEN, tenant_id=TENANT, api_threads=2, reader_stall_seconds=1.0)


@pytest.fixture(scope="module")
def guarded_server(guarded_settings, real_store):
    with running(serve(guarded_settings, real_store)) as url:
        yield url


def ws_url(url: str, query: str, **params) -> str:
    return url.replace("http://", "ws://") + "/loki/api/v1/tail?" + urllib.parse.urlencode({"query": query, **params})


def open_tail(url: str, query: str, headers: dict | None = None, **params) -> websocket.WebSocket:
    return websocket.create_connection(ws_url(url, query, **params), timeout=DEADLINE_SECONDS,
                                       header=[f"{k}: {v}" for k, v in (headers or {}).items()])


def entries_until(ws: websocket.WebSocket, count: int) -> list[tuple[int, str, dict]]:
    """(ts_ns, line, labels) of the frames' lines, in the order sent, until `count` have come."""
    seen: list[tuple[int, str, dict]] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while len(seen) < count:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        opcode, data = ws.recv_data(control_frame=False)
        assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
        message = json.loads(data)
        assert set(message) == {"streams"}, message
        batch = [(int(ts), line, stream["stream"]) for stream in message["streams"] for ts, line in stream["values"]]
        seen += sorted(batch, key=lambda entry: entry[0])
    return seen


def nothing_more_within(ws: websocket.WebSocket, seconds: float) -> bool:
    ws.settimeout(seconds)
    try:
        opcode, data = ws.recv_data(control_frame=False)
    except websocket.WebSocketTimeoutException:
        return True
    pytest.fail(f"unexpected message: {data!r}")


def post_write(url: str, records: list[dict], headers: dict | None = None) -> None:
    request_over_http(url, "POST", "/write", json.dumps(records).encode(),
                      {"Content-Type": "application/json", **(headers or {})}, expect=200)


def push(url: str, streams: list[dict], headers: dict | None = None) -> None:
    request_over_http(url, "POST", "/loki/api/v1/push", json.dumps({"streams": streams}).encode(),
                      {"Content-Type": "application/json", **(headers or {})}, expect=204)


def request_over_http(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                      expect: int | None = None) -> tuple[int, dict, bytes]:
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=DEADLINE_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        answer = response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
    if expect is not None:
        assert answer[0] == expect, answer
    return answer


UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def refused(url: str, query: str, headers: dict | None = None, **params) -> tuple[int, dict]:
    """The HTTP answer to an upgrade request that the server refuses before upgrading."""
    path = "/loki/api/v1/tail?" + urllib.parse.urlencode({"query": query, **params})
    status, _, body = request_over_http(url, "GET", path, headers={**UPGRADE, **(headers or {})})
    return status, json.loads(body)


# --- lines ---


def test_lines_pushed_and_written_after_the_tail_opened_come_once_in_order(open_server):
    url, pipeline = open_server
    namespace = unique("tail")
    ws = open_tail(url, f'{{namespace="{namespace}"}}')
    try:
        base = now_ns()
        push(url, [{"stream": {"namespace": namespace, "pod": "web-1", "container": "app", "team": "shop"},
                    "values": [[str(base + i), f"pushed {i}"] for i in range(3)]}])
        post_write(url, [fluent_bit_record(namespace, "web-1", "app", time=base + 10 + i, log=f"written {i}")
                         for i in range(3)])
        pipeline.drain()
        seen = entries_until(ws, 6)
        assert [line for _, line, _ in seen] == [f"pushed {i}" for i in range(3)] + [f"written {i}" for i in range(3)]
        assert [ts for ts, _, _ in seen] == sorted(ts for ts, _, _ in seen)
        assert seen[0][2] == {"namespace": namespace, "pod": "web-1", "container": "app", "team": "shop"}
        assert seen[3][2] == {"namespace": namespace, "pod": "web-1", "container": "app", "stream": "stdout"}
        assert nothing_more_within(ws, 1.5)  # a few polls more, nothing sent twice
    finally:
        ws.close()


def test_label_and_line_filters_and_the_pipeline_apply(open_server):
    url, pipeline = open_server
    namespace = unique("tail")
    ws = open_tail(url, f'{{namespace="{namespace}", container="app"}} |= "keep" | logfmt | level="error"')
    try:
        base = now_ns()
        post_write(url, [
            fluent_bit_record(namespace, "web-1", "app", time=base + 1, log="level=error keep 1"),
            fluent_bit_record(namespace, "web-1", "app", time=base + 2, log="level=info keep 2"),
            fluent_bit_record(namespace, "web-1", "app", time=base + 3, log="level=error drop 3"),
            fluent_bit_record(namespace, "web-1", "sidecar", time=base + 4, log="level=error keep 4"),
            fluent_bit_record(namespace, "web-1", "app", time=base + 5, log="level=error keep 5"),
        ])
        pipeline.drain()
        seen = entries_until(ws, 2)
        assert [line for _, line, _ in seen] == ["level=error keep 1", "level=error keep 5"]
        assert seen[0][2]["level"] == "error"  # the labels the pipeline extracted
        assert nothing_more_within(ws, 1.0)
    finally:
        ws.close()


@pytest.mark.parametrize("start_second, limit", [(2, "3"), (7, "100")], ids=["limit-cuts", "start-cuts"])
def test_the_newest_limit_stored_lines_since_start_come_first_oldest_first(open_server, real_store, start_second,
                                                                           limit):
    url, _ = open_server
    namespace = unique("tail")
    base = now_ns() - 60 * NS_PER_SECOND
    real_store.write([LogRow(namespace, "web-1", "app", base + i * NS_PER_SECOND, f"old {i}", "stdout")
                      for i in range(10)])
    ws = open_tail(url, f'{{namespace="{namespace}"}}', start=str(base + start_second * NS_PER_SECOND), limit=limit)
    try:
        assert [line for _, line, _ in entries_until(ws, 3)] == ["old 7", "old 8", "old 9"]
        assert nothing_more_within(ws, 1.0)  # nor the lines the limit left out, though inside the lookback
    finally:
        ws.close()


def test_a_quiet_tail_pings_at_once_and_answers_pings(open_server):
    url, _ = open_server
    ws = open_tail(url, f'{{namespace="{unique("tail")}"}}')
    try:
        ws.settimeout(DEADLINE_SECONDS)
        assert ws.recv_frame().opcode == websocket.ABNF.OPCODE_PING
        ws.ping(b"are you there")
        frame = ws.recv_frame()
        assert (frame.opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"are you there")
    finally:
        ws.close()


def test_the_client_closing_gets_the_close_answered(open_server):
    url, _ = open_server
    ws = open_tail(url, f'{{namespace="{unique("tail")}"}}')
    ws.send_close(websocket.STATUS_NORMAL, b"bye")
    ws.settimeout(DEADLINE_SECONDS)
    frame = ws.recv_frame()
    while frame.opcode == websocket.ABNF.OPCODE_PING:
        frame = ws.recv_frame()
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == websocket.STATUS_NORMAL
    ws.shutdown()


def test_logclis_exact_handshake_is_answered_with_101_and_frames(guarded_server, guarded_settings, real_store):
    """The bytes `logcli query --tail` (3.7.6) sent (tests/data/logcli/README.md): basic auth, X-Scope-Orgid,
    its query string `{namespace="demo"} |= "x"`. Only `start` is made recent (it was a fixed time when
    captured). A line pushed afterwards comes back in a text frame, read with wsproto as a client."""
    captured = (DATA_DIR / "logcli" / "tail-handshake.http").read_bytes()
    start = str(now_ns() - 60 * NS_PER_SECOND).encode()
    request = re.sub(rb"start=\d+", b"start=" + start, captured)
    host, port = urllib.parse.urlsplit(guarded_server).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=DEADLINE_SECONDS) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        head, _, rest = answer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols"
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        key = re.search(rb"Sec-WebSocket-Key: (\S+)", captured).group(1)
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()  # RFC 6455
        assert headers["sec-websocket-accept"] == accept and headers["upgrade"].lower() == "websocket"

        line = f"x marks {unique('replay')}"
        basic = re.search(rb"Authorization: (Basic \S+)", captured).group(1).decode()
        push(guarded_server, [{"stream": {"namespace": "demo", "pod": "p", "container": "c"},
                               "values": [[str(now_ns()), line]]}], {"Authorization": basic, "X-Scope-OrgID": TENANT})
        build_pipeline(guarded_settings, real_store).drain()
        client = wsproto.connection.Connection(wsproto.ConnectionType.CLIENT)
        client.receive_data(rest)
        received: list[str] = []
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not any(line in text for text in received) and time.monotonic() < deadline:
            for event in client.events():
                if isinstance(event, wsproto.events.TextMessage):
                    received.append(event.data)
            else:
                client.receive_data(sock.recv(65536))
        frames = [json.loads(text) for text in received]
        assert [value[1] for frame in frames for stream in frame["streams"] for value in stream["values"]
                if value[1] == line] == [line]


# --- refused before the upgrade ---


@pytest.mark.parametrize("query, params, bad", [
    ('{namespace="x"', {}, "query"),
    ('count_over_time({namespace="x"}[1m])', {}, "query"),
    ('{namespace="x"}', {"limit": "0"}, "limit"),
    ('{namespace="x"}', {"delay_for": "6"}, "delay_for"),
    ('{namespace="x"}', {"start": "yesterday"}, "start"),
])
def test_a_bad_query_or_parameter_is_400_before_the_upgrade(open_server, query, params, bad):
    url, _ = open_server
    status, body = refused(url, query, **params)
    assert status == 400 and body["message"] == f"Invalid parameter '{bad}'" and body["detail"], body


def test_the_real_client_sees_the_refusal_as_a_handshake_failure(open_server):
    url, _ = open_server
    with pytest.raises(websocket.WebSocketBadStatusException) as refusal:
        open_tail(url, '{namespace="x"')
    assert refusal.value.status_code == 400


def test_a_plain_get_without_the_upgrade_is_400(open_server):
    url, _ = open_server
    status, _, body = request_over_http(url, "GET", "/loki/api/v1/tail?query=%7Bnamespace%3D%22x%22%7D")
    assert status == 400 and json.loads(body)["message"] == "Not a WebSocket request"


def test_no_token_is_401_and_another_tenant_403(guarded_server):
    query = '{namespace="x"}'
    assert refused(guarded_server, query, {"X-Scope-OrgID": TENANT})[0] == 401
    assert refused(guarded_server, query, {"Authorization": f"Bearer {TOKEN}", "X-Scope-OrgID": "team-b"})[0] == 403
    assert refused(guarded_server, query, {"Authorization": f"Bearer {TOKEN}"})[0] == 401
    basic = base64.b64encode(f"grafana:{TOKEN}".encode()).decode()  # basic auth carries the same token
    ws = open_tail(guarded_server, query, {"Authorization": f"Basic {basic}", "X-Scope-OrgID": TENANT})
    ws.close()
    wait_for(lambda: refused(guarded_server, "{", AUTH)[0] == 400, timeout=DEADLINE_SECONDS, interval=0.1,
             what="the slot back")


def test_tenants_read_only_their_own_lines(integration_settings, real_store):
    """Two deployments (two keyspaces, two tenants): a tail on one never sees the other's lines."""
    namespace = unique("tenant")
    servers = []
    for tenant in ("team-a", "team-b"):
        settings = with_changes(integration_settings, queue_name=unique(tenant), tenant_id=tenant,
                                cassandra_keyspace=f"{integration_settings.cassandra_keyspace}_{tenant.replace('-', '_')}",
                                tail_poll_seconds=0.2)
        servers.append(settings)
    from common.store import CassandraStore
    stores = [CassandraStore(settings) for settings in servers]
    try:
        with running(serve(servers[0], stores[0])) as url_a, running(serve(servers[1], stores[1])) as url_b:
            ws = open_tail(url_a, f'{{namespace="{namespace}"}}', {"X-Scope-OrgID": "team-a"})
            try:
                base = now_ns()
                for url, tenant in ((url_b, "team-b"), (url_a, "team-a")):
                    push(url, [{"stream": {"namespace": namespace, "pod": "p", "container": "c"},
                                "values": [[str(base), f"line of {tenant}"]]}], {"X-Scope-OrgID": tenant})
                for settings, store in zip(servers, stores):
                    build_pipeline(settings, store).drain()
                assert [line for _, line, _ in entries_until(ws, 1)] == ["line of team-a"]
                assert nothing_more_within(ws, 1.0)
            finally:
                ws.close()
    finally:
        for store in stores:
            store.close()


# --- its read slot ---


def test_a_tail_holds_the_read_slot_and_closing_it_admits_the_next(guarded_server):
    query = f'{{namespace="{unique("slot")}"}}'
    ws = open_tail(guarded_server, query, AUTH)
    status, body = refused(guarded_server, query, AUTH)
    assert status == 429 and body["message"] == "Too many reads"
    ws.close()  # a close frame, answered
    wait_for(lambda: _admitted(guarded_server, query), timeout=DEADLINE_SECONDS, interval=0.1,
             what="the next tail admitted")


def test_a_client_that_vanishes_without_a_close_frame_frees_the_slot(guarded_server):
    query = f'{{namespace="{unique("slot")}"}}'
    ws = open_tail(guarded_server, query, AUTH)
    ws.sock.close()  # the TCP connection, no close frame
    wait_for(lambda: _admitted(guarded_server, query), timeout=DEADLINE_SECONDS, interval=0.1,
             what="the next tail admitted")


def test_a_tail_whose_client_stops_reading_is_cut_and_frees_the_slot(guarded_server, real_store):
    namespace = unique("stall")
    base = now_ns() - 600 * NS_PER_SECOND
    line = "x" * 2000
    rows = [LogRow(namespace, "big", "app", base + i * 1000, f"{i} {line}", "stdout") for i in range(10_000)]
    for first in range(0, len(rows), 5000):
        real_store.write(rows[first:first + 5000])
    query = f'{{namespace="{namespace}"}}'
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = urllib.parse.urlsplit(guarded_server).netloc.split(":")
    stalled.connect((host, int(port)))
    path = "/loki/api/v1/tail?" + urllib.parse.urlencode({"query": query, "start": str(base), "limit": "10000"})
    head = "".join(f"{k}: {v}\r\n" for k, v in {**UPGRADE, **AUTH, "Host": host}.items())
    stalled.sendall(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())  # and never reads the 20 MB of frames
    try:
        assert refused(guarded_server, query, AUTH)[0] == 429
        wait_for(lambda: _admitted(guarded_server, query), timeout=DEADLINE_SECONDS, interval=0.2,
                 what="the stalled tail cut and the next one admitted")
    finally:
        stalled.close()


def _admitted(url: str, query: str) -> bool:
    try:
        ws = open_tail(url, query, AUTH)
    except websocket.WebSocketBadStatusException as refusal:
        assert refusal.status_code == 429
        return False
    ws.close()
    return True
