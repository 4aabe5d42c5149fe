"""`kube-insight-logserver query`: a pod's or a container's lines over a time range, printed like
`kubectl logs`; with --follow, then the new lines as they are stored, like `kubectl logs -f`.

Following reads GET /tail from the newest line printed. When the connection drops it reconnects
with back-off, from the newest line printed again, skipping the lines already printed at exactly
that time, so nothing is printed twice. It stops on Ctrl-C (exit 0) or when the server ends the
tail (TAIL_MAX_SECONDS).
"""

from __future__ import annotations

import argparse
import decimal
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator

from cli.client import (
    RETRYABLE_STATUSES, LogServerClient, ServerError, ServerUnreachable, add_server_argument, server_url,
    token_of,
)
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns, parse_rfc3339_ns

PROG = "kube-insight-logserver query"
HELP = "print a pod's or a container's log lines over a time range, like kubectl logs (-f: --follow)"
DEFAULT_SINCE = "1h"
FIRST_RECONNECT_DELAY = 0.5
MAX_RECONNECT_DELAY = 30.0
_sleep = time.sleep  # between reconnections (tests replace it)

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """'30s', '5m', '1h', '2d', '1h30m', '1.5h' -> seconds (> 0); ValueError otherwise."""
    text = text.strip()
    if not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: expected numbers with a unit s, m, h or d "
                         "(e.g. 30s, 5m, 1h, 2d, 1h30m)")
    seconds = sum(decimal.Decimal(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return float(seconds)


def _duration_argument(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", required=True, help="Kubernetes namespace")
    parser.add_argument("--pod", required=True, help="pod name")
    parser.add_argument("--container",
                        help="container name (default: every container of the pod, each line prefixed [container])")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--since", type=_duration_argument, metavar="DURATION",
                        help=f"lines newer than this: 30s, 5m, 1h, 2d, 1h30m (default {DEFAULT_SINCE})")
    window.add_argument("--start-time", metavar="RFC3339", help="first instant, e.g. 2018-05-07T00:00:00Z")
    parser.add_argument("--end-time", metavar="RFC3339", help="last instant, with --start-time (default: now)")
    parser.add_argument("--timestamps", action="store_true", help="prefix each line with its RFC 3339 time")
    parser.add_argument("--json", action="store_true",
                        help="print the server's JSON document as is (with --follow: one JSON row per line)")
    parser.add_argument("--tail", type=_positive_int, metavar="N",
                        help="only the last N lines of the range (as kubectl logs --tail)")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="then keep printing new lines as they are stored, until Ctrl-C")
    add_server_argument(parser)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def pages(client: LogServerClient, args: argparse.Namespace, start_time: str,
          end_time: str | None) -> Iterator[dict]:
    """The query's answer, page by page. With --tail, one page: the newest N lines (read newest
    first, handed out oldest first). Otherwise pages follow next_cursor to the end, so an answer
    above the server's row cap comes whole; --json stops after the first (printed as is)."""
    where = (args.namespace, args.pod, args.container, start_time, end_time)
    if args.tail:
        document = client.query(*where, limit=str(args.tail), direction="backward")
        document["log_rows"].reverse()
        document.pop("next_cursor", None)
        yield document
        return
    document = client.query(*where)
    yield document
    while document.get("next_cursor") and not args.json:
        document = client.query(*where, cursor=document["next_cursor"])
        yield document


def _time_range(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.start_time:
        return args.start_time, args.end_time
    seconds = args.since if args.since is not None else parse_duration(DEFAULT_SINCE)
    return format_rfc3339_ns(now_ns() - int(seconds * NS_PER_SECOND)), None


class LinePrinter:
    """Prints rows like `kubectl logs` ([container] prefix for a whole pod, optional timestamps) or
    as JSON lines, and remembers the newest time printed and the lines printed at it, so a tail
    resumed from that time can skip exactly those."""

    def __init__(self, timestamps: bool, as_json: bool):
        self._timestamps = timestamps
        self._as_json = as_json
        self.newest_time: str | None = None
        self._newest_ns: int | None = None
        self._at_newest: Counter = Counter()

    def print(self, row: dict) -> None:
        if self._as_json:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            line = row.get("log", "")
            if self._timestamps:
                line = f"{row.get('time', '')} {line}"
            if "container" in row:
                line = f"[{row['container']}] {line}"
            # fluent-bit keeps each line's own newline; add one only where it is missing.
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
        ts_ns = parse_rfc3339_ns(row["time"])
        if self._newest_ns is None or ts_ns > self._newest_ns:
            self._newest_ns, self.newest_time = ts_ns, row["time"]
            self._at_newest = Counter([_identity(row)])
        elif ts_ns == self._newest_ns:
            self._at_newest[_identity(row)] += 1

    def resume_point(self, fallback: str) -> tuple[str, int | None, Counter]:
        """(since, its nanoseconds, lines already printed at it) for the next tail."""
        if self.newest_time is None:
            return fallback, None, Counter()
        return self.newest_time, self._newest_ns, Counter(self._at_newest)


def _identity(row: dict) -> tuple:
    return row.get("container"), row.get("log")


def follow(client: LogServerClient, args: argparse.Namespace, start_time: str, printer: LinePrinter) -> int:
    """Print what GET /tail sends from the newest line printed (else start_time), reconnecting
    whenever the connection drops or the server is busy: after Retry-After when it gives one, else
    0.5 s doubling up to 30 s while connections deliver nothing. Returns the exit status."""
    failures = 0
    while True:
        since, since_ns, replay = printer.resume_point(start_time)
        try:
            with client.open_tail(args.namespace, args.pod, args.container, since) as stream:
                for item in stream:
                    failures = 0  # the connection works: a later drop starts the back-off afresh
                    if "end" in item:
                        end = item["end"]
                        print(f"{PROG}: the server ended the tail ({end.get('reason', '')}): {end.get('detail', '')}",
                              file=sys.stderr)
                        return 0
                    if "error" in item:
                        error = item["error"]
                        print(f"{PROG}: warning: {error.get('message', '')}: {error.get('detail', '')}", file=sys.stderr)
                        continue
                    if since_ns is not None and replay[_identity(item)] and parse_rfc3339_ns(item["time"]) == since_ns:
                        replay[_identity(item)] -= 1  # printed before the connection dropped
                        continue
                    printer.print(item)
                    sys.stdout.flush()
            reason, retry_after = "the server closed the connection", None
        except ServerError as error:
            if error.status not in RETRYABLE_STATUSES:
                print(f"{PROG}: {error}", file=sys.stderr)
                return 1
            reason, retry_after = str(error), error.retry_after
        except ServerUnreachable as error:
            reason, retry_after = str(error), None
        failures += 1
        delay = FIRST_RECONNECT_DELAY * 2 ** (failures - 1) if retry_after is None else retry_after
        delay = min(delay, MAX_RECONNECT_DELAY)
        print(f"{PROG}: {reason}; reconnecting in {delay:g}s", file=sys.stderr)
        _sleep(delay)


def run(args: argparse.Namespace) -> int:
    if args.end_time and not args.start_time:
        print(f"{PROG}: --end-time needs --start-time", file=sys.stderr)
        return 2
    if args.follow and args.end_time:
        print(f"{PROG}: --follow goes on past now: it cannot have an --end-time", file=sys.stderr)
        return 2
    try:
        client = LogServerClient(server_url(args.server, os.environ), token=token_of(args.token, os.environ))
    except ValueError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    start_time, end_time = _time_range(args)
    printer = LinePrinter(args.timestamps, args.json)
    document: dict = {}
    try:
        for document in pages(client, args, start_time, end_time):
            if args.json and not args.follow:
                print(json.dumps(document, ensure_ascii=False))
            else:
                for row in document.get("log_rows", []):
                    printer.print(row)
                sys.stdout.flush()
        if args.follow:
            # A truncated answer needs no warning here: the tail goes on from its last line.
            return follow(client, args, start_time, printer)
    except ServerError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except ServerUnreachable as error:
        print(f"{PROG}: server unreachable: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as kubectl logs does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if not args.follow:
            raise
        return 0  # Ctrl-C is how a follow ends
    if document.get("truncated"):
        print(f"{PROG}: warning: the answer is truncated: {document.get('detail', '')}", file=sys.stderr)
    return 0
