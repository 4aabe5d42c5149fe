"""Worker and API processes for fault tests: the real console script, with a test's settings."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from pathlib import Path

from common.settings import Settings
from tests.waiting import wait_for

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
        "CASSANDRA_LAYOUT": settings.cassandra_layout,
        "CASSANDRA_WRITE_CONSISTENCY": settings.cassandra_write_consistency,
        "CASSANDRA_READ_CONSISTENCY": settings.cassandra_read_consistency,
        "CASSANDRA_LOCAL_DC": settings.cassandra_local_dc,
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


def kill_pid(pid: int) -> None:
    """SIGKILL a process this test did not start (e.g. an API process of the supervisor)."""
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not exists(pid), timeout=10, what=f"process {pid} to die")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill(process)


def start_api(settings: Settings, log_path: Path, port: int, **extra: str) -> subprocess.Popen:
    """The API on 127.0.0.1:`port`, returned once it answers GET /ready."""
    process = start("api", settings, log_path, IP="127.0.0.1", PORT=str(port), **extra)
    wait_until_answering(process, port)
    return process


def wait_until_answering(process: subprocess.Popen, port: int, timeout: float = 60) -> None:
    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with status {process.returncode} before answering")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ready")
            connection.getresponse().read()
            connection.close()
            return True
        except OSError:
            return False

    wait_for(answering, timeout=timeout, interval=0.05, what=f"the API to answer on port {port}")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def metric(port: int, name: str) -> float:
    """One sample's value from a Prometheus endpoint on 127.0.0.1 (`name` with its labels, if any)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise KeyError(f"no sample {name} on port {port}")


def children(pid: int) -> list[int]:
    """The live child processes of `pid`, zombies left out (Linux: /proc/<pid>/task/<pid>/children)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    listed = [int(child) for child in path.read_text().split()] if path.exists() else []
    return [child for child in listed if exists(child)]


def exists(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie)."""
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False
