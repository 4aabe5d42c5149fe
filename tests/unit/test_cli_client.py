"""The `query` and `insert` client subcommands, over real HTTP against the app built with fakes."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socket
import socketserver
import threading
import wsgiref.simple_server

import pytest

from cli.client import LogServerClient, ServerError, ServerUnreachable, parse_retry_after
from cli.main import main
from cli.progress import NoProgress, ProgressBar, progress_for
from cli.query_command import parse_duration
from common.queue import decode_payload
from common.settings import Settings
from common.timestamps import NS_PER_SECOND, now_ns, parse_rfc3339_ns
from tests.records import fluent_bit_record
from tests.unit.api_harness import FakeStore, build

T0 = parse_rfc3339_ns("2018-05-07T00:00:00Z")
WINDOW = ["--start-time", "2018-05-07T00:00:00Z", "--end-time", "2018-05-07T01:00:00Z"]
CONTAINER = ["--namespace", "default", "--pod", "nginx-1", "--container", "nginx"]
NGINX_1 = ("default", "nginx-1", "nginx")


# --- servers ---


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # keep stderr for what the CLI prints
        pass


@contextlib.contextmanager
def in_thread(server: socketserver.BaseServer):
    """Serve `server` (bound to 127.0.0.1, port 0) from a thread; yields its URL."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serving(app):
    return in_thread(wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler))


@pytest.fixture
def live():
    """The real app (fakeredis queue, FakeStore) on a real HTTP port; `live(store=..., settings=...)`."""
    stack = contextlib.ExitStack()

    def start(store: FakeStore | None = None, settings: Settings | None = None):
        harness = build(settings, store)
        harness.url = stack.enter_context(serving(harness.client.app))
        return harness

    with stack:
        yield start


@contextlib.contextmanager
def scripted_server(*answers: tuple[int, dict, dict]):
    """A stand-in /write answering (status, headers, body) in turn, repeating the last one."""
    requests: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            requests.append(self.rfile.read(int(self.headers["Content-Length"])))
            status, headers, body = answers[min(len(requests), len(answers)) - 1]
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json",
                                "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            pass

    with in_thread(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url, requests


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


ACCEPTED = (200, {}, {"accepted": 1, "rejected": 0, "truncated_lines": 0, "errors": []})
BUSY = (503, {"Retry-After": "0"}, {"message": "Queue unavailable", "detail": "ingest is backed up"})


# --- helpers ---


def record(i: int, pod: str = "nginx-1") -> dict:
    """Line i of a file to insert, one second after line i - 1."""
    return fluent_bit_record("default", pod, "nginx", time=f"2018-05-07T00:00:{i:02d}Z", log=f"line {i}\n")


def queued_rows(harness):
    rows = []
    for job in harness.queue.rq_queue.get_jobs():
        rows += decode_payload(harness.redis.get(job.args[0])).rows
    return rows


def summary(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# --- query ---


def test_query_prints_each_line_as_stored_adding_a_newline_only_where_missing(live, capsys):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0 + 1, "first\n"), (T0 + 2, "second\n"), (T0 + 3, "no newline")]))
    assert main(["query", *CONTAINER, *WINDOW, "--server", api.url]) == 0
    assert capsys.readouterr().out == "first\nsecond\nno newline\n"


def test_query_asks_the_server_for_the_container_and_range_given(live, capsys):
    api = live()
    main(["query", *CONTAINER, *WINDOW, "--server", api.url])
    assert {read[:3] for read in api.store.reads} == {("default", "nginx-1", "nginx")}
    assert api.store.reads[0][4][0] == T0 and api.store.reads[-1][5][0] == T0 + 3600 * NS_PER_SECOND


def test_query_with_timestamps_prefixes_each_line_with_its_rfc3339_time(live, capsys):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0 + 100_000_000, "first\n"), (T0 + 1_500_000_000, "second\n")]))
    main(["query", *CONTAINER, *WINDOW, "--timestamps", "--server", api.url])
    assert capsys.readouterr().out == "2018-05-07T00:00:00.1Z first\n2018-05-07T00:00:01.5Z second\n"


def test_query_with_json_prints_the_servers_document(live, capsys):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0, "first\n")]))
    main(["query", *CONTAINER, *WINDOW, "--json", "--server", api.url])
    document = json.loads(capsys.readouterr().out)
    assert document == {"log_rows": [{"time": "2018-05-07T00:00:00Z", "log": "first\n"}]}


def test_query_since_returns_only_lines_newer_than_the_duration(live, capsys):
    now = now_ns()
    api = live(store=FakeStore(container=NGINX_1, rows=[(now - 7200 * NS_PER_SECOND, "two hours ago\n"),
                                     (now - 600 * NS_PER_SECOND, "ten minutes ago\n")]))
    main(["query", *CONTAINER, "--since", "1h", "--server", api.url])
    assert capsys.readouterr().out == "ten minutes ago\n"


def test_a_bad_request_exits_non_zero_with_the_servers_message_on_stderr(live, capsys):
    api = live()
    status = main(["query", *CONTAINER, "--start-time", "yesterday", "--server", api.url])
    captured = capsys.readouterr()
    assert status == 1
    assert "HTTP 400 Invalid parameter 'start_time'" in captured.err
    assert "expected RFC 3339" in captured.err
    assert captured.out == ""


def test_an_answer_above_the_row_cap_is_fetched_page_by_page_and_printed_whole(live, capsys):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0 + i, f"line {i}\n") for i in range(5)]),
               settings=Settings(query_max_rows=2))
    assert main(["query", *CONTAINER, *WINDOW, "--server", api.url]) == 0
    captured = capsys.readouterr()
    assert captured.out == "".join(f"line {i}\n" for i in range(5))
    assert captured.err == ""


def test_a_truncated_json_answer_is_printed_as_is_with_a_warning_on_stderr(live, capsys):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0 + i, f"line {i}\n") for i in range(3)]),
               settings=Settings(query_max_rows=2))
    assert main(["query", *CONTAINER, *WINDOW, "--json", "--server", api.url]) == 0
    captured = capsys.readouterr()
    assert [row["log"] for row in json.loads(captured.out)["log_rows"]] == ["line 0\n", "line 1\n"]
    assert "warning: the answer is truncated" in captured.err and "QUERY_MAX_ROWS" in captured.err


def test_tail_prints_only_the_last_lines_oldest_first(live, capsys):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0 + i, f"line {i}\n") for i in range(5)]))
    assert main(["query", *CONTAINER, *WINDOW, "--tail", "2", "--server", api.url]) == 0
    assert capsys.readouterr().out == "line 3\nline 4\n"


def test_the_token_from_the_environment_is_sent_as_a_bearer_token(live, capsys, monkeypatch):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0, "secret line\n")]),
               settings=Settings(query_token="s3cret"))
    assert main(["query", *CONTAINER, *WINDOW, "--server", api.url]) == 1
    assert "401" in capsys.readouterr().err
    monkeypatch.setenv("KUBE_INSIGHT_TOKEN", "s3cret")
    assert main(["query", *CONTAINER, *WINDOW, "--server", api.url]) == 0
    assert capsys.readouterr().out == "secret line\n"


def test_insert_sends_the_token_flag_as_a_bearer_token(live, tmp_path, capsys):
    api = live(settings=Settings(ingest_token="t0ken"))
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record(0)) + "\n")
    assert main(["insert", str(path), "--token", "t0ken", "--server", api.url]) == 0
    assert [row.log for row in queued_rows(api)] == ["line 0\n"]


def test_query_finds_the_server_in_KUBE_INSIGHT_SERVER(live, capsys, monkeypatch):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0, "from env\n")]))
    monkeypatch.setenv("KUBE_INSIGHT_SERVER", api.url)
    assert main(["query", *CONTAINER, *WINDOW]) == 0
    assert capsys.readouterr().out == "from env\n"


def test_the_server_flag_wins_over_KUBE_INSIGHT_SERVER(live, capsys, monkeypatch):
    api = live(store=FakeStore(container=NGINX_1, rows=[(T0, "from flag\n")]))
    monkeypatch.setenv("KUBE_INSIGHT_SERVER", closed_port_url())
    assert main(["query", *CONTAINER, *WINDOW, "--server", api.url]) == 0
    assert capsys.readouterr().out == "from flag\n"


def test_query_exits_non_zero_when_the_server_does_not_answer(capsys):
    assert main(["query", *CONTAINER, *WINDOW, "--server", closed_port_url()]) == 1
    assert "server unreachable" in capsys.readouterr().err


def test_end_time_without_start_time_is_refused_before_asking_the_server(capsys):
    assert main(["query", *CONTAINER, "--end-time", "2018-05-07T01:00:00Z", "--server", closed_port_url()]) == 2
    assert "--end-time needs --start-time" in capsys.readouterr().err


# --- --since durations ---


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), ("1h30m", 5400), ("1.5h", 5400),
])
def test_a_duration_is_read_in_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "0s", "1w", "1 h", "h1"])
def test_a_malformed_or_empty_duration_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_bad_since_stops_the_command_with_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["query", *CONTAINER, "--since", "1week"])
    assert exit_info.value.code == 2
    assert "invalid duration '1week'" in capsys.readouterr().err


# --- insert ---


def test_insert_of_a_json_lines_file_queues_every_record_in_order(live, tmp_path, capsys):
    api = live()
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(record(i)) for i in range(5)) + "\n")
    assert main(["insert", str(path), "--server", api.url]) == 0
    assert [row.log for row in queued_rows(api)] == [f"line {i}\n" for i in range(5)]
    assert summary(capsys.readouterr().out) == {"sent": 5, "accepted": 5, "rejected": 0, "failed": 0,
                                                 "unreadable_lines": 0}


def test_insert_of_a_json_array_file_queues_every_record_in_order(live, tmp_path, capsys):
    api = live()
    path = tmp_path / "records.json"
    path.write_text("  \n" + json.dumps([record(i) for i in range(5)], indent=2))
    assert main(["insert", str(path), "--server", api.url]) == 0
    assert [row.log for row in queued_rows(api)] == [f"line {i}\n" for i in range(5)]


def test_insert_sends_one_batch_per_batch_size_records(live, tmp_path, capsys):
    api = live()
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(record(i)) for i in range(5)))
    main(["insert", str(path), "--batch-size", "2", "--server", api.url])
    assert api.queue.rq_queue.count == 3


def test_insert_reports_rejected_records_by_line_and_keeps_the_valid_ones(live, tmp_path, capsys):
    api = live()
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([json.dumps(record(0)), json.dumps({"log": "no kubernetes"}),
                               "not json", json.dumps(record(3))]))
    assert main(["insert", str(path), "--server", api.url]) == 0
    captured = capsys.readouterr()
    assert summary(captured.out) == {"sent": 3, "accepted": 2, "rejected": 1, "failed": 0, "unreadable_lines": 1}
    assert "line 2 rejected" in captured.err and "kubernetes" in captured.err
    assert "line 3 skipped: not valid JSON" in captured.err
    assert [row.log for row in queued_rows(api)] == ["line 0\n", "line 3\n"]


def test_insert_exits_non_zero_when_a_batch_is_refused(live, tmp_path, capsys):
    api = live()
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([json.dumps({"log": "invalid"}), json.dumps(record(1))]))
    assert main(["insert", str(path), "--batch-size", "1", "--server", api.url]) == 1
    captured = capsys.readouterr()
    assert "batch 1 (line 1) failed: HTTP 400 No valid record" in captured.err
    assert summary(captured.out) == {"sent": 2, "accepted": 1, "rejected": 0, "failed": 1, "unreadable_lines": 0}
    assert [row.log for row in queued_rows(api)] == ["line 1\n"]


def test_insert_of_an_unreadable_file_exits_with_a_usage_error(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text("[{\"log\": ")
    assert main(["insert", str(path), "--server", closed_port_url()]) == 2
    assert "not a valid JSON array" in capsys.readouterr().err


def test_insert_retries_a_batch_answered_503_and_succeeds(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record(0)))
    with scripted_server(BUSY, ACCEPTED) as (url, requests):
        assert main(["insert", str(path), "--server", url]) == 0
    assert len(requests) == 2 and requests[0] == requests[1]
    captured = capsys.readouterr()
    assert summary(captured.out)["accepted"] == 1
    assert "batch 1: HTTP 503 Queue unavailable" in captured.err and "retrying" in captured.err


def test_insert_gives_up_after_a_bounded_number_of_attempts_and_exits_non_zero(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record(0)) + "\n" + json.dumps(record(1)))
    with scripted_server(BUSY) as (url, requests):
        assert main(["insert", str(path), "--batch-size", "1", "--server", url]) == 1
    assert len(requests) == 5  # the first batch only: the command stops once the server stays busy
    assert "stopping" in capsys.readouterr().err


def test_insert_draws_no_progress_bar_when_stderr_is_not_a_terminal(live, tmp_path, capsys):
    api = live()
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record(0)))
    main(["insert", str(path), "--server", api.url])
    assert "\r" not in capsys.readouterr().err


# --- the HTTP client's retry loop ---


def test_the_client_waits_as_long_as_retry_after_says():
    delays: list[float] = []
    with scripted_server((503, {"Retry-After": "7"}, {"message": "busy"}), ACCEPTED) as (url, requests):
        answer = LogServerClient(url, sleep=delays.append).post_batch([record(0)])
    assert answer["accepted"] == 1
    assert delays == [7.0]


def test_the_client_retries_429():
    delays: list[float] = []
    with scripted_server((429, {"Retry-After": "1"}, {"message": "slow down"}), ACCEPTED) as (url, requests):
        LogServerClient(url, sleep=delays.append).post_batch([record(0)])
    assert len(requests) == 2


def test_the_client_backs_off_exponentially_on_connection_errors_then_raises():
    delays: list[float] = []
    client = LogServerClient(closed_port_url(), attempts=4, first_backoff=0.5, sleep=delays.append)
    with pytest.raises(ServerUnreachable):
        client.post_batch([record(0)])
    assert delays == [0.5, 1.0, 2.0]


def test_the_client_does_not_retry_a_request_that_can_never_succeed():
    delays: list[float] = []
    with scripted_server((400, {}, {"message": "Invalid body", "detail": "not JSON"})) as (url, requests):
        with pytest.raises(ServerError) as error:
            LogServerClient(url, sleep=delays.append).post_batch([record(0)])
    assert (error.value.status, error.value.message, error.value.detail) == (400, "Invalid body", "not JSON")
    assert len(requests) == 1 and delays == []


def test_the_client_caps_a_huge_retry_after():
    delays: list[float] = []
    with scripted_server((503, {"Retry-After": "86400"}, {"message": "busy"}), ACCEPTED) as (url, requests):
        LogServerClient(url, max_delay=60, sleep=delays.append).post_batch([record(0)])
    assert delays == [60]


@pytest.mark.parametrize("value, seconds", [("5", 5.0), ("0", 0.0), (None, None), ("soon", None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after_is_read_as_seconds_or_a_past_http_date(value, seconds):
    assert parse_retry_after(value) == seconds


# --- progress bar ---


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_redraws_one_line_with_the_share_done():
    stream = _Terminal()
    bar = progress_for(stream, total=200)
    bar.update(50, "50 records sent")
    bar.update(200, "200 records sent")
    assert isinstance(bar, ProgressBar)
    assert stream.getvalue().split("\r")[1:] == [
        "[#######-----------------------]  25%  50 records sent",
        "[##############################] 100%  200 records sent",
    ]


def test_a_message_is_printed_on_its_own_line_over_the_progress_bar():
    stream = _Terminal()
    bar = progress_for(stream, total=10)
    bar.update(5)
    bar.message("retrying")
    bar_width = len("[###############---------------]  50%")
    assert stream.getvalue().endswith("\r" + "retrying".ljust(bar_width) + "\n")


def test_no_progress_bar_is_drawn_on_a_stream_that_is_not_a_terminal():
    stream = io.StringIO()
    bar = progress_for(stream, total=10)
    bar.update(5)
    assert isinstance(bar, NoProgress) and stream.getvalue() == ""
