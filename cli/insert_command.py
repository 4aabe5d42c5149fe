"""`kube-insight-logserver insert FILE`: send a file of fluent-bit records to POST /write in batches."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from cli.client import (RETRYABLE_STATUSES, LogServerClient, ServerError, ServerUnreachable,
                        add_server_argument, server_url, token_of)
from cli.progress import NoProgress, ProgressBar, progress_for
from cli.record_file import Batch, RecordFile, RecordFileError

PROG = "kube-insight-logserver insert"
HELP = "send a file of fluent-bit records (JSON array or JSON lines) to POST /write in batches"
ATTEMPTS = 5
MAX_MESSAGES = 10


@dataclasses.dataclass
class Summary:
    sent: int = 0  # records posted (including those of failed batches)
    accepted: int = 0
    rejected: int = 0  # refused by the server as invalid
    failed: int = 0  # records of batches that finally failed
    unreadable_lines: int = 0  # JSON lines that are not JSON, never sent


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a JSON array of records, or one JSON record per line")
    parser.add_argument("--batch-size", type=_positive_int, default=1000, metavar="N",
                        help="records per POST /write (default 1000)")
    add_server_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        server = server_url(args.server, os.environ)
        handle = open(args.file, "rb")
    except (ValueError, OSError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    with handle:
        try:
            records = RecordFile(handle, args.batch_size)
        except RecordFileError as error:
            print(f"{PROG}: {args.file}: {error}", file=sys.stderr)
            return 2
        progress = progress_for(sys.stderr, records.total)
        summary = _send_all(records, server, token_of(args.token, os.environ), progress)
        progress.close()
    _report_unreadable(records, progress)
    print(json.dumps(dataclasses.asdict(summary)))
    return 1 if summary.failed else 0


def _send_all(records: RecordFile, server: str, token: str | None, progress: ProgressBar | NoProgress) -> Summary:
    summary = Summary()
    number = 0

    def on_retry(attempt: int, delay: float, error: Exception) -> None:
        progress.message(f"{PROG}: batch {number}: {error}; retrying in {delay:g}s "
                         f"(attempt {attempt + 1} of {ATTEMPTS})")

    client = LogServerClient(server, attempts=ATTEMPTS, on_retry=on_retry, token=token)
    for number, batch in enumerate(records.batches(), start=1):
        summary.sent += len(batch.records)
        try:
            answer = client.post_batch(batch.records)
        except (ServerError, ServerUnreachable) as error:
            summary.failed += len(batch.records)
            progress.message(f"{PROG}: batch {number} ({_span(batch)}) failed: {error}")
            if isinstance(error, ServerUnreachable) or error.status in RETRYABLE_STATUSES:
                progress.message(f"{PROG}: stopping: the server stayed unavailable; "
                                 f"records after {batch.locations[-1]} were not sent")
                break
            continue
        summary.accepted += answer.get("accepted", 0)
        summary.rejected += answer.get("rejected", 0)
        _report_rejections(batch, answer, progress)
        progress.update(batch.progress, f"{summary.sent:,} records sent")
    summary.unreadable_lines = len(records.unreadable)
    return summary


def _span(batch: Batch) -> str:
    return batch.locations[0] if len(batch.locations) == 1 else f"{batch.locations[0]} to {batch.locations[-1]}"


def _report_rejections(batch: Batch, answer: dict, progress: ProgressBar | NoProgress) -> None:
    errors = answer.get("errors") or []
    for error in errors:
        index = error.get("index")
        where = batch.locations[index] if isinstance(index, int) and 0 <= index < len(batch.locations) else "?"
        progress.message(f"{PROG}: {where} rejected: {error.get('reason', '')}")
    unlisted = answer.get("rejected", 0) - len(errors)
    if unlisted > 0:
        progress.message(f"{PROG}: {unlisted} more records rejected in {_span(batch)}")


def _report_unreadable(records: RecordFile, progress: ProgressBar | NoProgress) -> None:
    for item in records.unreadable[:MAX_MESSAGES]:
        progress.message(f"{PROG}: line {item.line} skipped: {item.reason}")
    if len(records.unreadable) > MAX_MESSAGES:
        progress.message(f"{PROG}: {len(records.unreadable) - MAX_MESSAGES} more unreadable lines skipped")
