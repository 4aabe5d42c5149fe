"""Scenario 8, short: bench/soak.py for 20 s, so CI runs the soak script end to end (`make soak`
runs it for 3 minutes). It exits 0 only if memory stayed flat and every acknowledged record was
stored once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_short_soak_keeps_memory_flat_and_stores_every_acknowledged_record(integration_settings, tmp_path):
    run = subprocess.run(
        [sys.executable, str(SOAK), "--seconds", "20", "--rate", "2000", "--sample-every", "1", "--warmup", "5",
         "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )
    summary = [line for line in run.stdout.splitlines() if line.startswith("[soak] ")]
    print("\n" + ("\n".join(summary) or run.stdout[-3000:]))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (result_file,) = tmp_path.glob("soak-*.json")
    result = json.loads(result_file.read_text())
    assert result["ok"] and all(result["checks"].values())
    assert result["stored"]["acknowledged"] == result["stored"]["stored"] > 0
