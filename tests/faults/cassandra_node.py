"""A private Cassandra node for one test, run by scripts/cassandra.sh beside the shared one.

It has its own run directory (data, pid file, logs) and ports, and shares only the installed jars,
so the test may stop and start it without touching the node everyone else uses on :9042.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.integration.redis_server import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cassandra.sh"


class CassandraNode:
    def __init__(self, run_dir: Path, heap: str = "768M"):
        self.run_dir = run_dir
        self.port = free_port()
        self._env = {
            **os.environ,
            "RUN_DIR": str(run_dir),
            "CASSANDRA_PORT": str(self.port),
            "CASSANDRA_STORAGE_PORT": str(free_port()),
            "CASSANDRA_JMX_PORT": str(free_port()),
            "CASSANDRA_HEAP": heap,
        }

    def start(self) -> float:
        """Start the node and wait until it answers CQL; returns the seconds that took."""
        return self._script("start", timeout=300)

    def stop(self) -> float:
        """Stop the node (SIGTERM, SIGKILL after a grace period); returns the seconds that took."""
        return self._script("stop", timeout=120)

    def _script(self, command: str, timeout: float) -> float:
        started = time.monotonic()
        result = subprocess.run([str(SCRIPT), command], env=self._env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"cassandra.sh {command} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return time.monotonic() - started
