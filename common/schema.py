"""CQL for the keyspace and tables, built from settings (pure: no I/O)."""

from __future__ import annotations

import json

from common.settings import Settings

LOG_TABLE = "log_lines"
SETTINGS_TABLE = "schema_settings"


def create_keyspace(settings: Settings) -> str:
    # CQL's replication map is JSON-like with single quotes.
    replication = json.dumps(settings.replication_map()).replace('"', "'")
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {settings.cassandra_keyspace} "
        f"WITH replication = {replication}"
    )


def compaction_window(bucket_seconds: int) -> tuple[str, int]:
    """TimeWindowCompactionStrategy window equal to one bucket, in the coarsest unit that fits."""
    for unit, seconds in (("DAYS", 86400), ("HOURS", 3600), ("MINUTES", 60)):
        if bucket_seconds % seconds == 0:
            return unit, bucket_seconds // seconds
    return "MINUTES", max(bucket_seconds // 60, 1)


def create_log_table(settings: Settings) -> str:
    unit, size = compaction_window(settings.cassandra_bucket_seconds)
    return f"""
        CREATE TABLE IF NOT EXISTS {settings.cassandra_keyspace}.{LOG_TABLE} (
            namespace text,
            pod_name text,
            container_name text,
            bucket bigint,
            ts_ns bigint,
            line_id bigint,
            log text,
            stream text,
            host text,
            pod_id text,
            docker_id text,
            labels map<text, text>,
            PRIMARY KEY ((namespace, pod_name, container_name, bucket), ts_ns, line_id)
        ) WITH CLUSTERING ORDER BY (ts_ns ASC, line_id ASC)
          AND compaction = {{'class': 'TimeWindowCompactionStrategy',
                             'compaction_window_unit': '{unit}', 'compaction_window_size': {size}}}
          AND default_time_to_live = {settings.cassandra_ttl_seconds}
          AND comment = 'kube-insight-logserver pod log lines'"""


def create_settings_table(settings: Settings) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {settings.cassandra_keyspace}.{SETTINGS_TABLE} "
        "(name text PRIMARY KEY, value text)"
    )


def insert_row(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{LOG_TABLE} (namespace, pod_name, container_name, bucket, ts_ns, "
        "line_id, log, stream, host, pod_id, docker_id, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )


def select_slice(keyspace: str) -> str:
    return (
        f"SELECT ts_ns, log FROM {keyspace}.{LOG_TABLE} WHERE namespace = ? AND pod_name = ? "
        "AND container_name = ? AND bucket = ? AND ts_ns >= ? AND ts_ns <= ?"
    )
