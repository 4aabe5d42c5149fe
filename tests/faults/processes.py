"""Worker and API processes for fault tests: the real console script, with a test's settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from common.settings import Settings

CLI = str(Path(sys.executable).with_name("kube-insight-logserver"))


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "QUEUE_NAME": settings.queue_name,
        "CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts),
        "CASSANDRA_PORT": str(settings.cassandra_port),
        "CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
        "CASSANDRA_CONSISTENCY": settings.cassandra_consistency,
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def start(command: str, settings: Settings, log_path: Path, **extra: str) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([CLI, command], env=settings_env(settings, **extra), stdout=log, stderr=log)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill(process)
