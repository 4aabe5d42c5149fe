"""`kube-insight-logserver insert` then `query` against the API and worker started by `make up`."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from cli.main import main
from tests.records import fluent_bit_record
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

API = os.environ.get("TEST_API_URL", "http://127.0.0.1:8080")
RECORDS = 2500
DEADLINE_SECONDS = 60


def test_a_file_inserted_with_the_cli_is_read_back_in_order_by_the_cli(tmp_path, capsys):
    pod = f"cli-{uuid.uuid4().hex}"
    lines = [f"line {i} of {pod}\n" for i in range(RECORDS)]
    path = tmp_path / "records.jsonl"
    with path.open("w") as handle:
        for i, line in enumerate(lines):
            # One line per millisecond from 2018-05-09T00:00:00Z: 2.5 s in all.
            seconds, millis = divmod(i, 1000)
            handle.write(json.dumps(fluent_bit_record(
                "default", pod, "app", time=f"2018-05-09T00:00:{seconds:02d}.{millis:03d}Z", log=line)) + "\n")

    status = main(["insert", str(path), "--batch-size", "1000", "--server", API])
    inserted = capsys.readouterr()
    assert status == 0, inserted.err
    assert json.loads(inserted.out) == {"sent": RECORDS, "accepted": RECORDS, "rejected": 0, "failed": 0,
                                        "unreadable_lines": 0}

    query = ["query", "--namespace", "default", "--pod", pod, "--container", "app",
             "--start-time", "2018-05-09T00:00:00Z", "--end-time", "2018-05-09T00:01:00Z",
             "--json", "--server", API]
    def every_row() -> list[dict] | None:
        status = main(query)
        answer = capsys.readouterr()
        assert status == 0, answer.err
        rows = json.loads(answer.out)["log_rows"]
        return rows if len(rows) >= RECORDS else None

    rows = wait_for(every_row, timeout=DEADLINE_SECONDS, interval=0.2, what=f"{RECORDS} rows from the CLI's query")
    assert [row["log"] for row in rows] == lines
