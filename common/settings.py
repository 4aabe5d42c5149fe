"""One settings object, built once at start from environment variables and command-line flags.

Every option has a flag and an environment variable; a flag wins over the variable, the variable
over the default. Names follow the Go seed where it had the option (IP, PORT, CASSANDRA_*,
ENABLE_PROFILING; Cassandra hosts as positional arguments). A bad value stops the program at once
with a message naming the option and what to fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Every example secret in deploy/ and docker-compose.yml holds this: a process warns when it runs with one.
EXAMPLE_SECRET_MARK = "change-me"
REPLICATION_STRATEGIES = ("SimpleStrategy", "NetworkTopologyStrategy")
WRITE_MODES = ("batch", "concurrent")
LAYOUTS = ("rows", "blocks")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RECORD_KEYS = ("kubernetes", "log", "stream", "time")  # fixed keys of a fluent-bit record
CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE", "ALL")


class SettingsError(ValueError):
    """A setting has a value the program cannot run with."""


@dataclasses.dataclass(frozen=True)
class Settings:
    # HTTP front end
    ip: str = "0.0.0.0"
    port: int = 8080
    api_threads: int = 8
    api_processes: int = 1
    max_body_bytes: int = 16 * 1024 * 1024
    max_line_bytes: int = 256 * 1024
    fluent_bit_date_key: str = "date"
    fluent_bit_offset_key: str = "offset"
    fluent_bit_path_key: str = "log_file"
    loki_namespace_label: str = "namespace"
    loki_pod_label: str = "pod"
    loki_container_label: str = "container"
    loki_stream_label: str = "stream"
    query_max_rows: int = 100_000
    query_max_range_seconds: int = 31 * 86400
    query_max_stream_rows: int = 1_000_000
    query_max_scan_rows: int = 1_000_000
    query_timeout_seconds: float = 10.0
    tail_poll_seconds: float = 1.0
    tail_lookback_seconds: int = 5
    tail_max_seconds: int = 3600
    reader_stall_seconds: float = 30.0
    enable_profiling: bool = False
    ingest_token: str = dataclasses.field(default="", repr=False)
    query_token: str = dataclasses.field(default="", repr=False)
    tenant_id: str = ""
    # Redis and the queue
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str = dataclasses.field(default="", repr=False)
    redis_timeout_seconds: float = 1.0
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "logserver"
    redis_sentinel_password: str = dataclasses.field(default="", repr=False)
    redis_wait_replicas: int = 0
    queue_name: str = "kube-insight-logs"
    queue_high_water_mark: int = 5000
    retry_after_seconds: int = 5
    # Cassandra
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    cassandra_keyspace: str = "insight_logs"
    cassandra_replication_strategy: str = "SimpleStrategy"
    cassandra_replication_factors: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"cluster": 1}
    )
    cassandra_consistency: str = "LOCAL_QUORUM"
    cassandra_write_consistency: str = ""  # empty: cassandra_consistency
    cassandra_read_consistency: str = ""  # empty: cassandra_consistency
    cassandra_local_dc: str = ""  # empty: the data centre of the contact point the driver reaches first
    cassandra_bucket_seconds: int = 3600
    cassandra_ttl_seconds: int = 0
    cassandra_timeout_seconds: float = 10.0
    cassandra_layout: str = "blocks"
    cassandra_write_mode: str = "batch"
    cassandra_write_concurrency: int = 64
    cassandra_username: str = ""
    cassandra_password: str = dataclasses.field(default="", repr=False)
    # Worker
    worker_metrics_port: int = 9100
    worker_burst: bool = False
    worker_batches_per_write: int = 16
    worker_write_max_bytes: int = 32 * 1024 * 1024
    worker_batches_per_job: int = 64
    block_merge_after_seconds: int = 300
    job_timeout_seconds: int = 120
    job_retry_intervals: tuple[int, ...] = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900)
    maintenance_interval_seconds: int = 10
    # Both
    log_level: str = "INFO"

    def replication_map(self) -> dict[str, Any]:
        """The replication options of CREATE KEYSPACE, in the seed's `{"cluster": N}` convention."""
        if self.cassandra_replication_strategy == "SimpleStrategy":
            (factor,) = self.cassandra_replication_factors.values()
            return {"class": "SimpleStrategy", "replication_factor": factor}
        return {"class": "NetworkTopologyStrategy", **self.cassandra_replication_factors}

    def write_consistency(self) -> str:
        return self.cassandra_write_consistency or self.cassandra_consistency

    def read_consistency(self) -> str:
        return self.cassandra_read_consistency or self.cassandra_consistency


# --- value parsers: each raises SettingsError with a message that says what is expected ---


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise SettingsError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise SettingsError(f"must be {bound}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise SettingsError(f"must be a finite number > 0, got {text!r}")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"expected true or false, got {text!r}")


def _choice(choices: Sequence[str], *, upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.upper() if upper else text
        if value not in choices:
            raise SettingsError(f"must be one of {', '.join(choices)}; got {text!r}")
        return value

    return parse


def _text(text: str) -> str:
    if not text.strip():
        raise SettingsError("must not be empty")
    return text


def _any_text(text: str) -> str:
    return text


# Loki's rule for tenant IDs: up to 150 of these characters.
_TENANT_ID = re.compile(r"[A-Za-z0-9!\-_.*'()]{1,150}")


def _tenant_id(text: str) -> str:
    if text and not _TENANT_ID.fullmatch(text):
        raise SettingsError(f"must be empty or 1-150 letters, digits and !-_.*'(); got {text!r}")
    return text


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _label_name(text: str) -> str:
    if not _LABEL_NAME.fullmatch(text):
        raise SettingsError(f"expected a Loki label name (a letter or '_', then letters, digits, '_'), got {text!r}")
    return text


_KEYSPACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


def _keyspace(text: str) -> str:
    # The name is spliced into CQL unquoted: only Cassandra's own unquoted-identifier alphabet.
    if not _KEYSPACE_NAME.fullmatch(text):
        raise SettingsError(
            f"must start with a letter and hold only letters, digits and '_' (max 48), got {text!r}"
        )
    return text


def _replication_factors(text: str) -> dict[str, int]:
    try:
        value = json.loads(text)
    except ValueError:
        raise SettingsError(f'expected a JSON map such as {{"dc1": 3}}, got {text!r}') from None
    if (
        not isinstance(value, dict)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value.values())
    ):
        raise SettingsError(f"expected a non-empty JSON map of positive integers, got {text!r}")
    return value


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"expected redis://host:port/db (or rediss://, unix://), got {text!r}")
    return text


def _intervals(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"expected comma-separated seconds such as 1,5,30, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise SettingsError(f"expected at least one non-negative number of seconds, got {text!r}")
    return values


def _sentinels(text: str) -> tuple[tuple[str, int], ...]:
    addresses = []
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"expected comma-separated host:port pairs such as 127.0.0.1:26379, got {part!r}")
        addresses.append((host, int(port)))
    return tuple(addresses)


def _hosts(text: str) -> tuple[str, ...]:
    hosts = tuple(part.strip() for part in text.split(",") if part.strip())
    if not hosts:
        raise SettingsError("expected at least one host name or address")
    return hosts


@dataclasses.dataclass(frozen=True)
class Option:
    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    scope: str = "common"  # "common", "api" or "worker": which subcommands offer it
    secret: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("ip", "--bind-address", "IP", _text, "IP address the HTTP server binds to", "api"),
    Option("port", "--port", "PORT", _int(1, 65535), "HTTP port to listen on", "api"),
    Option("api_threads", "--api-threads", "API_THREADS", _int(2, 256),
           "waitress worker threads; reads (GET /query, /tail, discovery) may hold at most half of them", "api"),
    Option("api_processes", "--processes", "API_PROCESSES", _int(1, 64),
           "API processes serving the one port (each with API_THREADS threads); above 1 a supervisor owns the "
           "socket and replaces a child that dies", "api"),
    Option("max_body_bytes", "--max-body-bytes", "MAX_BODY_BYTES", _int(1024),
           "largest POST /write body accepted, and largest a gzip body may inflate to; larger get 413",
           "api"),
    Option("max_line_bytes", "--max-line-bytes", "MAX_LINE_BYTES", _int(64),
           "a log line longer than this (UTF-8 bytes) is truncated to it and marked", "api"),
    Option("fluent_bit_date_key", "--fluent-bit-date-key", "FLUENT_BIT_DATE_KEY", _text,
           "fluent-bit's json_date_key: the record key holding its timestamp when `time` is absent", "api"),
    Option("fluent_bit_offset_key", "--fluent-bit-offset-key", "FLUENT_BIT_OFFSET_KEY", _text,
           "fluent-bit tail's Offset_Key: the record key holding the line's byte offset in its file; "
           "a line with one is identified by container, file, time and offset (README, identity rule)", "api"),
    Option("fluent_bit_path_key", "--fluent-bit-path-key", "FLUENT_BIT_PATH_KEY", _text,
           "fluent-bit tail's Path_Key: the record key naming the line's file", "api"),
    Option("loki_namespace_label", "--loki-namespace-label", "LOKI_NAMESPACE_LABEL", _label_name,
           "Loki push: the stream label holding the namespace (e.g. namespace_name)", "api"),
    Option("loki_pod_label", "--loki-pod-label", "LOKI_POD_LABEL", _label_name,
           "Loki push: the stream label holding the pod name", "api"),
    Option("loki_container_label", "--loki-container-label", "LOKI_CONTAINER_LABEL", _label_name,
           "Loki push: the stream label holding the container name", "api"),
    Option("loki_stream_label", "--loki-stream-label", "LOKI_STREAM_LABEL", _label_name,
           "Loki push: the stream label holding stdout/stderr; other labels and structured metadata go to `labels`",
           "api"),
    Option("query_max_rows", "--query-max-rows", "QUERY_MAX_ROWS", _int(1),
           "most rows one JSON GET /query answer holds; a longer one says truncated=true and gives next_cursor", "api"),
    Option("query_max_range_seconds", "--query-max-range-seconds", "QUERY_MAX_RANGE_SECONDS", _int(1),
           "widest time range one GET /query may ask for", "api"),
    Option("query_max_stream_rows", "--query-max-stream-rows", "QUERY_MAX_STREAM_ROWS", _int(1),
           "most rows one streamed answer (ndjson, text) returns before it is cut with a cursor", "api"),
    Option("query_max_scan_rows", "--query-max-scan-rows", "QUERY_MAX_SCAN_ROWS", _int(1),
           "most stored rows one query reads (filters included) before it is cut with a cursor", "api"),
    Option("query_timeout_seconds", "--query-timeout-seconds", "QUERY_TIMEOUT_SECONDS", _positive_float,
           "time one query may spend reading before it is cut with a cursor", "api"),
    Option("tail_poll_seconds", "--tail-poll-seconds", "TAIL_POLL_SECONDS", _positive_float,
           "how often GET /tail polls the store for new lines", "api"),
    Option("tail_lookback_seconds", "--tail-lookback-seconds", "TAIL_LOOKBACK_SECONDS", _int(0, 3600),
           "how far behind the newest line shown GET /tail still picks up late lines", "api"),
    Option("tail_max_seconds", "--tail-max-seconds", "TAIL_MAX_SECONDS", _int(1),
           "longest a GET /tail stream stays open before it ends cleanly", "api"),
    Option("reader_stall_seconds", "--reader-stall-seconds", "READER_STALL_SECONDS", _positive_float,
           "an answer whose client has taken none of its unsent bytes for this long is cut, and its thread freed",
           "api"),
    Option("enable_profiling", "--enable-profiling", "ENABLE_PROFILING", _bool,
           "serve /debug/pprof/profile (CPU) and /debug/pprof/heap (allocations)", "api"),
    Option("ingest_token", "--ingest-token", "INGEST_TOKEN", _any_text,
           "bearer token POST /write requires (empty: no authentication)", "api", secret=True),
    Option("query_token", "--query-token", "QUERY_TOKEN", _any_text,
           "bearer token GET /query requires (empty: no authentication)", "api", secret=True),
    Option("tenant_id", "--tenant-id", "TENANT_ID", _tenant_id,
           "the one tenant this deployment serves: the Loki API then requires X-Scope-OrgID to be it "
           "(empty: X-Scope-OrgID is accepted and not checked)", "api"),
    Option("redis_url", "--redis-url", "REDIS_URL", _redis_url, "Redis holding the queue"),
    Option("redis_password", "--redis-password", "REDIS_PASSWORD", _any_text,
           "password Redis requires (its requirepass; one in REDIS_URL wins; empty: none)", secret=True),
    Option("redis_timeout_seconds", "--redis-timeout-seconds", "REDIS_TIMEOUT_SECONDS", _positive_float,
           "bound on every Redis call (connect and command)"),
    Option("redis_sentinels", "--redis-sentinels", "REDIS_SENTINELS", _sentinels,
           "comma-separated host:port of Redis Sentinels: the primary is asked of them (and followed after a "
           "failover) instead of REDIS_URL's host; REDIS_URL still gives the database number (empty: no Sentinel)"),
    Option("redis_sentinel_master", "--redis-sentinel-master", "REDIS_SENTINEL_MASTER", _text,
           "the master name the Sentinels monitor (with REDIS_SENTINELS)"),
    Option("redis_sentinel_password", "--redis-sentinel-password", "REDIS_SENTINEL_PASSWORD", _any_text,
           "password the Sentinels themselves require (their requirepass; empty: none)", secret=True),
    Option("redis_wait_replicas", "--redis-wait-replicas", "REDIS_WAIT_REPLICAS", _int(0, 16),
           "replicas that must confirm a batch (Redis WAIT, within half of REDIS_TIMEOUT_SECONDS) before it is "
           "acknowledged; else 503 (0: the primary's answer is enough)", "api"),
    Option("queue_name", "--queue-name", "QUEUE_NAME", _text, "RQ queue the batches go through"),
    Option("queue_high_water_mark", "--queue-high-water-mark", "QUEUE_HIGH_WATER_MARK", _int(1),
           "queued batches above which POST /write answers 503 + Retry-After", "api"),
    Option("retry_after_seconds", "--retry-after-seconds", "RETRY_AFTER_SECONDS", _int(1),
           "Retry-After sent with a 503", "api"),
    Option("cassandra_hosts", "--cassandra-hosts", "CASSANDRA_HOSTS", _hosts,
           "comma-separated Cassandra contact points (positional arguments win)"),
    Option("cassandra_port", "--cassandra-port", "CASSANDRA_PORT", _int(1, 65535), "Cassandra CQL port"),
    Option("cassandra_keyspace", "--cassandra-keyspace", "CASSANDRA_KEYSPACE", _keyspace,
           "keyspace to use (created when missing)"),
    Option("cassandra_replication_strategy", "--cassandra-replication-strategy",
           "CASSANDRA_REPLICATION_STRATEGY", _choice(REPLICATION_STRATEGIES),
           "replication strategy used when the keyspace is created"),
    Option("cassandra_replication_factors", "--cassandra-replication-factors",
           "CASSANDRA_REPLICATION_FACTORS", _replication_factors,
           'JSON map of replication factors: {"cluster": N} for SimpleStrategy, {"dc1": 3, ...} otherwise'),
    Option("cassandra_consistency", "--cassandra-consistency", "CASSANDRA_CONSISTENCY",
           _choice(CONSISTENCY_LEVELS, upper=True),
           "consistency level of writes and reads unless one of the two below is set"),
    Option("cassandra_write_consistency", "--cassandra-write-consistency", "CASSANDRA_WRITE_CONSISTENCY",
           _choice(("", *CONSISTENCY_LEVELS), upper=True),
           "consistency level a worker's writes are acknowledged at (empty: CASSANDRA_CONSISTENCY)"),
    Option("cassandra_read_consistency", "--cassandra-read-consistency", "CASSANDRA_READ_CONSISTENCY",
           _choice(("", *CONSISTENCY_LEVELS), upper=True),
           "consistency level of queries, tail and discovery (empty: CASSANDRA_CONSISTENCY; LOCAL_ONE "
           "reads faster and may miss a line written a moment ago)"),
    Option("cassandra_local_dc", "--cassandra-local-dc", "CASSANDRA_LOCAL_DC", _any_text,
           "data centre the driver sends requests to, token-aware within it (empty: the first contact "
           "point's)"),
    Option("cassandra_bucket_seconds", "--cassandra-bucket-seconds", "CASSANDRA_BUCKET_SECONDS",
           _int(60, 7 * 86400), "time span of one partition (bounds partition size); fixed per table"),
    Option("cassandra_ttl_seconds", "--cassandra-ttl-seconds", "CASSANDRA_TTL_SECONDS", _int(0),
           "default TTL of log rows (0: keep forever); a change is applied to the existing tables at start"),
    Option("cassandra_timeout_seconds", "--cassandra-timeout-seconds", "CASSANDRA_TIMEOUT_SECONDS",
           _positive_float, "client-side timeout of one Cassandra request"),
    Option("cassandra_layout", "--cassandra-layout", "CASSANDRA_LAYOUT", _choice(LAYOUTS),
           "how workers store lines: 'rows' (a row per line) or 'blocks' (zstd-compressed blocks of one "
           "container's lines, a row per block); reads always cover both, so a switch is safe either way",
           "worker"),
    Option("cassandra_write_mode", "--cassandra-write-mode", "CASSANDRA_WRITE_MODE", _choice(WRITE_MODES),
           "'batch' (single-partition unlogged batches under 40 KiB; ~5x faster here) or 'concurrent' (one INSERT per row)",
           "worker"),
    Option("cassandra_write_concurrency", "--cassandra-write-concurrency", "CASSANDRA_WRITE_CONCURRENCY",
           _int(1, 2048), "requests in flight per worker while writing a batch", "worker"),
    Option("cassandra_username", "--cassandra-username", "CASSANDRA_USERNAME", _any_text,
           "user for PasswordAuthenticator (empty: no authentication)"),
    Option("cassandra_password", "--cassandra-password", "CASSANDRA_PASSWORD", _any_text,
           "password for PasswordAuthenticator", secret=True),
    Option("worker_metrics_port", "--metrics-port", "WORKER_METRICS_PORT", _int(0, 65535),
           "port of the worker's own /metrics (0: off)", "worker"),
    Option("worker_burst", "--burst", "WORKER_BURST", _bool, "exit once the queue is empty", "worker"),
    Option("worker_batches_per_write", "--batches-per-write", "WORKER_BATCHES_PER_WRITE", _int(1, 64),
           "a job's batch and up to this many - 1 batches already queued behind it, written together "
           "(bigger blocks, fewer round trips); 1: one batch per write", "worker"),
    Option("worker_write_max_bytes", "--write-max-bytes", "WORKER_WRITE_MAX_BYTES", _int(1024),
           "the batches a job claims to write with its own hold at most this many bytes in their queued "
           "form, decoded (the first is always taken): bounds a write's memory", "worker"),
    Option("worker_batches_per_job", "--batches-per-job", "WORKER_BATCHES_PER_JOB", _int(1, 4096),
           "after its own write, a job goes on writing the batches already queued (WORKER_BATCHES_PER_WRITE "
           "at a time) until none waits or it has written this many, within half the job timeout; 1: only "
           "its own write", "worker"),
    Option("block_merge_after_seconds", "--block-merge-after-seconds", "BLOCK_MERGE_AFTER_SECONDS", _int(0),
           "blocks layout: small blocks written at least this long ago are merged into bigger ones by the "
           "workers' maintenance (0: never merge)", "worker"),
    Option("job_timeout_seconds", "--job-timeout-seconds", "JOB_TIMEOUT_SECONDS", _int(5),
           "longest one batch write may take before it is retried"),
    Option("job_retry_intervals", "--job-retry-intervals", "JOB_RETRY_INTERVALS", _intervals,
           "back-off (seconds) between retries of a failed batch; their count is the retry budget"),
    Option("maintenance_interval_seconds", "--maintenance-interval-seconds", "MAINTENANCE_INTERVAL_SECONDS",
           _int(5), "how often a worker requeues jobs abandoned by a dead worker", "worker"),
    Option("log_level", "--log-level", "LOG_LEVEL", _choice(LOG_LEVELS, upper=True), "log verbosity"),
)


def _default_text(option: Option) -> str:
    value = getattr(Settings(), option.field)
    if option.secret:
        return "(unset)" if not value else "(set)"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def example_secrets(settings: Settings) -> list[str]:
    """Env names of the secrets still holding an example value of the shipped deployment files."""
    return [o.env for o in OPTIONS
            if o.secret and EXAMPLE_SECRET_MARK in str(getattr(settings, o.field)).lower()]


def options_for(scope: str) -> list[Option]:
    return [o for o in OPTIONS if o.scope in ("common", scope)]


def add_options(parser: argparse.ArgumentParser, scope: str) -> None:
    """Add every option of `scope` to `parser`; values stay raw strings until `build_settings`."""
    for option in options_for(scope):
        boolean = option.parse is _bool
        parser.add_argument(
            option.flag,
            dest=option.field,
            default=None,
            nargs="?" if boolean else None,
            const="true" if boolean else None,
            metavar=option.env,
            help=f"{option.help} (env {option.env}, default {_default_text(option)})",
        )
    if scope in ("api", "worker"):
        parser.add_argument(
            "hosts",
            nargs="*",
            metavar="cassandra-node",
            help="Cassandra contact points, as in the seed (default: CASSANDRA_HOSTS or 127.0.0.1)",
        )


def build_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None, scope: str = "api"
) -> Settings:
    """Settings from raw flag values and environment; flags win. Raises SettingsError."""
    flags = flags or {}
    env = env or {}
    values: dict[str, Any] = {}
    for option in options_for(scope):
        raw, source = flags.get(option.field), option.flag
        if raw is None and option.env in env:
            raw, source = env[option.env], option.env
        if raw is None:
            continue
        try:
            values[option.field] = option.parse(str(raw))
        except SettingsError as error:
            where = source if source == option.env else f"{source} ({option.env})"
            raise SettingsError(f"invalid {where}: {error}") from None
    if flags.get("hosts"):
        values["cassandra_hosts"] = tuple(flags["hosts"])
    settings = Settings(**values)
    _check_consistent(settings)
    return settings


def _check_consistent(settings: Settings) -> None:
    if settings.cassandra_replication_strategy == "SimpleStrategy" and len(
        settings.cassandra_replication_factors
    ) != 1:
        raise SettingsError(
            "invalid --cassandra-replication-factors (CASSANDRA_REPLICATION_FACTORS): SimpleStrategy "
            'takes a single factor such as {"cluster": 1}'
        )
    keys = (settings.fluent_bit_date_key, settings.fluent_bit_offset_key, settings.fluent_bit_path_key)
    if len(set(keys)) < 3 or set(keys) & set(RECORD_KEYS):
        raise SettingsError(
            "FLUENT_BIT_DATE_KEY, FLUENT_BIT_OFFSET_KEY and FLUENT_BIT_PATH_KEY must be three different "
            f"record keys, none of {', '.join(RECORD_KEYS)}; got {', '.join(keys)}"
        )
    loki_labels = (settings.loki_namespace_label, settings.loki_pod_label, settings.loki_container_label,
                   settings.loki_stream_label)
    if len(set(loki_labels)) != len(loki_labels):
        raise SettingsError(
            "LOKI_NAMESPACE_LABEL, LOKI_POD_LABEL, LOKI_CONTAINER_LABEL and LOKI_STREAM_LABEL must be four "
            f"different labels, got {', '.join(loki_labels)}"
        )
    if bool(settings.cassandra_username) != bool(settings.cassandra_password):
        raise SettingsError("CASSANDRA_USERNAME and CASSANDRA_PASSWORD must be set together")
