"""API_PROCESSES > 1: one listening socket, that many API processes serving it, each replaced when it dies.

Why processes: one API process is bound by its GIL to about one core (README, "Measured
performance"). The supervisor binds IP:PORT once and forks the API processes, which inherit the
socket and accept from it (the kernel hands each connection to one of them); the supervisor itself
serves nothing and holds no Redis or Cassandra connection. Each child builds its app, and so its
Redis and Cassandra clients, after the fork (api/server.py `serve`): a client's sockets and threads
must not be shared across a fork.

Per process, not per port: the reads' share of threads (api/read_slots.py) and the cut of stalled
readers (api/server.py) each count the threads and connections of one process, so the port as a
whole serves up to API_PROCESSES x half of API_THREADS reads at once.

A child that exits (killed, crashed) is replaced. A child that dies within QUICK_EXIT_SECONDS of its
start counts as a crash loop: the replacements then wait longer and longer (`restart_delay`). SIGTERM
or SIGINT to the supervisor sends SIGTERM to every child, waits up to STOP_GRACE_SECONDS for them,
kills what is left, and exits. A supervisor that is SIGKILLed takes its children with it (SIGTERM
from the kernel), so none is left holding the port.

Metrics: the supervisor points PROMETHEUS_MULTIPROC_DIR at a fresh empty folder for each start
(common/metrics.py), before prometheus_client is imported, and removes it at exit. So this module
imports the API (and with it prometheus_client) only once that is done.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable

from common.parent_death import signal_when_parent_dies
from common.settings import Settings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
QUICK_EXIT_SECONDS = 10.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1
LISTEN_BACKLOG = 1024  # waitress's own default


def restart_delay(quick_exits: int) -> float:
    """Seconds to wait before replacing a child, after `quick_exits` children in a row each died
    within QUICK_EXIT_SECONDS of its start: none for one (a kill), then 0.5 s doubling up to 30 s."""
    if quick_exits <= 1:
        return 0.0
    return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (quick_exits - 2))


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening, for the children to inherit."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(LISTEN_BACKLOG)
    return sock


class Supervisor:
    """Keeps `processes` forked children running `serve_child()` until stopped (`run`)."""

    def __init__(self, processes: int, serve_child: Callable[[], None],
                 on_child_exit: Callable[[int], None] = lambda pid: None):
        self._processes = processes
        self._serve_child = serve_child
        self._on_child_exit = on_child_exit
        self._children: dict[int, float] = {}  # pid -> when it started (time.monotonic)
        self._quick_exits = 0
        self._next_start = 0.0
        self._stop_deadline: float | None = None
        self._pid = os.getpid()

    @property
    def children(self) -> list[int]:
        return list(self._children)

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop the children; returns once all have exited."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        while self._stop_deadline is None and len(self._children) < self._processes:
            self._spawn()
        while self._children:
            self._reap()
            now = time.monotonic()
            if self._stop_deadline is None:
                if len(self._children) < self._processes and now >= self._next_start:
                    self._spawn()
            elif now >= self._stop_deadline:
                for pid in self._children:
                    log.warning("event=api_process_killed pid=%d reason=stop_grace_exceeded", pid)
                    _signal(pid, signal.SIGKILL)
            time.sleep(POLL_SECONDS)

    def _stop(self, signum: int, frame) -> None:
        if self._stop_deadline is not None:
            return
        log.info("event=api_supervisor_stopping signal=%s children=%d", signal.Signals(signum).name,
                 len(self._children))
        self._stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        for pid in list(self._children):
            _signal(pid, signal.SIGTERM)

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:
            self._run_child()
        self._children[pid] = time.monotonic()
        log.info("event=api_process_started pid=%d processes=%d", pid, len(self._children))

    def _run_child(self) -> None:
        """In the child: the signals as a single API process has them, serve, and never return."""
        status = 0
        try:
            signal_when_parent_dies()  # a SIGKILLed supervisor must not leave API processes on the port
            if os.getppid() != self._pid:
                return  # it died before that took effect
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._serve_child()
        except KeyboardInterrupt:
            pass
        except BaseException:
            log.exception("event=api_process_failed pid=%d", os.getpid())
            status = 1
        finally:
            os._exit(status)  # never the supervisor's own cleanup (finally blocks, atexit)

    def _reap(self) -> None:
        while self._children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            started = self._children.pop(pid, None)
            if started is None:
                continue
            self._on_child_exit(pid)
            now = time.monotonic()
            self._quick_exits = self._quick_exits + 1 if now - started < QUICK_EXIT_SECONDS else 1
            self._next_start = now + restart_delay(self._quick_exits)
            if self._stop_deadline is None:
                log.warning("event=api_process_exited pid=%d %s lived_seconds=%.1f restart_in_seconds=%.1f",
                            pid, _describe(status), now - started, self._next_start - now)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # exited already; reaped on the next pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal={signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit_status={os.waitstatus_to_exitcode(status)}"


def run_supervised(settings: Settings) -> None:
    """API_PROCESSES API processes on IP:PORT, until SIGTERM or SIGINT."""
    metrics_dir = tempfile.mkdtemp(prefix="kube-insight-logserver-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        from prometheus_client import values
        from prometheus_client.multiprocess import mark_process_dead

        if values.ValueClass is values.MutexValue:
            raise RuntimeError("prometheus_client was imported before the supervisor set " + MULTIPROC_ENV)
        from api.server import serve

        sock = listen(settings.ip, settings.port)
        log.info("event=api_supervisor_listening ip=%s port=%d processes=%d threads=%d metrics_dir=%s",
                 settings.ip, settings.port, settings.api_processes, settings.api_threads, metrics_dir)
        supervisor = Supervisor(settings.api_processes, lambda: serve(settings, [sock], metrics_dir),
                                on_child_exit=lambda pid: mark_process_dead(pid, metrics_dir))
        try:
            supervisor.run()
        finally:
            sock.close()
        log.info("event=api_supervisor_stopped")
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
