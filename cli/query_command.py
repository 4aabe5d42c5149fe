"""`kube-insight-logserver query`: one container's lines over a time range, printed like `kubectl logs`."""

from __future__ import annotations

import argparse
import decimal
import json
import os
import re
import sys

from cli.client import LogServerClient, ServerError, ServerUnreachable, add_server_argument, server_url
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns, now_ns

PROG = "kube-insight-logserver query"
HELP = "print a container's log lines over a time range, like kubectl logs"
DEFAULT_SINCE = "1h"

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
    parser.add_argument("--container", required=True, help="container name")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--since", type=_duration_argument, metavar="DURATION",
                        help=f"lines newer than this: 30s, 5m, 1h, 2d, 1h30m (default {DEFAULT_SINCE})")
    window.add_argument("--start-time", metavar="RFC3339", help="first instant, e.g. 2018-05-07T00:00:00Z")
    parser.add_argument("--end-time", metavar="RFC3339", help="last instant, with --start-time (default: now)")
    parser.add_argument("--timestamps", action="store_true", help="prefix each line with its RFC 3339 time")
    parser.add_argument("--json", action="store_true", help="print the server's JSON document as is")
    add_server_argument(parser)


def _time_range(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.start_time:
        return args.start_time, args.end_time
    seconds = args.since if args.since is not None else parse_duration(DEFAULT_SINCE)
    return format_rfc3339_ns(now_ns() - int(seconds * NS_PER_SECOND)), None


def _print_rows(rows: list[dict], timestamps: bool) -> None:
    write = sys.stdout.write
    for row in rows:
        line = row.get("log", "")
        if timestamps:
            line = f"{row.get('time', '')} {line}"
        # fluent-bit keeps each line's own newline; add one only where it is missing.
        write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    if args.end_time and not args.start_time:
        print(f"{PROG}: --end-time needs --start-time", file=sys.stderr)
        return 2
    try:
        client = LogServerClient(server_url(args.server, os.environ))
    except ValueError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    start_time, end_time = _time_range(args)
    try:
        document = client.query(args.namespace, args.pod, args.container, start_time, end_time)
    except ServerError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except ServerUnreachable as error:
        print(f"{PROG}: server unreachable: {error}", file=sys.stderr)
        return 1
    try:
        if args.json:
            print(json.dumps(document, ensure_ascii=False))
        else:
            _print_rows(document.get("log_rows", []), args.timestamps)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as kubectl logs does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if document.get("truncated"):
        print(f"{PROG}: warning: the answer is truncated: {document.get('detail', '')}", file=sys.stderr)
    return 0
