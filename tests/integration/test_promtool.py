"""promtool, Prometheus's own checker, on deploy/prometheus/ and on the live /metrics of the API and
the worker that `make up` started.

promtool comes from Debian's prometheus package, which scripts/install.sh installs. When it is
missing these tests fail (never skip), so a machine without it cannot pass.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from common.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: `make up` (scripts/install.sh) installs it with Debian's "
            "prometheus package; run it first"
        )
    return path


def _promtool(promtool: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, *args], input=stdin, capture_output=True, cwd=PROMETHEUS, timeout=120, check=False
    )


def _output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).decode(errors="replace")


def _scrape(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            return response.read()
    except (urllib.error.URLError, OSError) as error:
        pytest.fail(f"cannot scrape {url} ({error}): run `make up` first (make test does)")


def test_alerting_rules_pass_promtool_check_rules(promtool):
    result = _promtool(promtool, "check", "rules", "rules.yml")
    assert result.returncode == 0, _output(result)


def test_alerting_rules_pass_their_promtool_unit_tests(promtool):
    # rules-test.yml feeds series to rules.yml and states which alerts fire, and when.
    result = _promtool(promtool, "test", "rules", "rules-test.yml")
    assert result.returncode == 0, _output(result)


def test_dashboard_expressions_are_valid_promql(promtool, tmp_path):
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert expressions
    # Grafana substitutes its variables before querying; "All" of $namespace is `.*`.
    rules = [
        {"record": f"dashboard:panel_expression_{i}", "expr": expr.replace("$namespace", ".*")}
        for i, expr in enumerate(expressions)
    ]
    rules_file = tmp_path / "dashboard-rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, _output(result)


@pytest.mark.parametrize(
    "process,port",
    [("api", Settings().port), ("worker", Settings().worker_metrics_port)],
)
def test_live_metrics_pass_promtool_check_metrics(promtool, process, port):
    body = _scrape(f"http://127.0.0.1:{port}/metrics")
    expected = b"logserver_redis_up" if process == "api" else b"logserver_worker_rows_written_total"
    assert expected in body, f"127.0.0.1:{port} does not look like the {process}'s /metrics"
    result = _promtool(promtool, "check", "metrics", stdin=body)
    assert result.returncode == 0, f"promtool check metrics on the {process}'s /metrics:\n{_output(result)}"
