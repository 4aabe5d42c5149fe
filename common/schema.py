"""CQL for the keyspace and tables, built from settings (pure: no I/O)."""

from __future__ import annotations

import hashlib
import json

from common.log_store import Direction
from common.settings import Settings

LOG_TABLE = "log_lines"
BLOCK_TABLE = "log_blocks"
STREAM_INDEX_TABLE = "log_streams"
NAMESPACE_INDEX_TABLE = "log_namespaces"
SERIES_INDEX_TABLE = "log_series"
SETTINGS_TABLE = "schema_settings"

# Line ids are non-negative 63-bit numbers (row_keys.line_ids): these bound every (ts_ns, line_id).
LINE_ID_MIN = -(2**63)
LINE_ID_MAX = 2**63 - 1

# How long a worker trusts that an index entry it wrote is still there (see index_ttl_seconds).
INDEX_REFRESH_SECONDS = 3600


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


def _partition_table(settings: Settings, table: str, clustering: tuple[str, str], columns: str,
                     options: str, comment: str) -> str:
    """A table of one container's lines, partitioned by (namespace, pod, container, bucket),
    compacted by time window, with the settings' TTL."""
    unit, size = compaction_window(settings.cassandra_bucket_seconds)
    first, second = clustering
    return f"""
        CREATE TABLE IF NOT EXISTS {settings.cassandra_keyspace}.{table} (
            namespace text,
            pod_name text,
            container_name text,
            bucket bigint,
            {first} bigint,
            {second} bigint,{columns}
            PRIMARY KEY ((namespace, pod_name, container_name, bucket), {first}, {second})
        ) WITH CLUSTERING ORDER BY ({first} ASC, {second} ASC)
          AND compaction = {{'class': 'TimeWindowCompactionStrategy',
                             'compaction_window_unit': '{unit}', 'compaction_window_size': {size}}}{options}
          AND default_time_to_live = {settings.cassandra_ttl_seconds}
          AND comment = '{comment}'"""


def create_log_table(settings: Settings) -> str:
    return _partition_table(settings, LOG_TABLE, ("ts_ns", "line_id"), """
            log text,
            stream text,
            host text,
            pod_id text,
            docker_id text,
            labels frozen<map<text, text>>,""", "", "kube-insight-logserver pod log lines")


def create_block_table(settings: Settings) -> str:
    """The `blocks` layout: a row per block of one container's lines (common.blocks), clustered by
    the block's first time and its id; max_ts and line_count let a read skip it undecoded. The
    data is zstd already: Cassandra's own compression would only spend CPU."""
    return _partition_table(settings, BLOCK_TABLE, ("first_ts", "block_id"), """
            max_ts bigint,
            line_count int,
            data blob,""", "\n          AND compression = {'enabled': 'false'}",
                            "kube-insight-logserver pod log lines, in zstd-compressed blocks")


def insert_block(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{BLOCK_TABLE} (namespace, pod_name, container_name, bucket, first_ts, "
        "block_id, max_ts, line_count, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )


def insert_block_with_ttl(keyspace: str) -> str:
    """A merged block keeps the shortest time to live its lines had left (never outlives one)."""
    return insert_block(keyspace) + " USING TTL ?"


def select_block_summaries(keyspace: str) -> str:
    """Every block of one partition without its data: what the merge of small blocks picks from."""
    return (
        f"SELECT first_ts, block_id, max_ts, line_count, WRITETIME(data), TTL(data) FROM {keyspace}.{BLOCK_TABLE} "
        "WHERE namespace = ? AND pod_name = ? AND container_name = ? AND bucket = ?"
    )


def select_block_data(keyspace: str) -> str:
    return (
        f"SELECT data FROM {keyspace}.{BLOCK_TABLE} WHERE namespace = ? AND pod_name = ? AND container_name = ? "
        "AND bucket = ? AND first_ts = ? AND block_id = ?"
    )


def delete_block(keyspace: str) -> str:
    return (
        f"DELETE FROM {keyspace}.{BLOCK_TABLE} WHERE namespace = ? AND pod_name = ? AND container_name = ? "
        "AND bucket = ? AND first_ts = ? AND block_id = ?"
    )


def select_blocks(keyspace: str, direction: Direction) -> str:
    """One partition's blocks that may hold lines with low_ts <= ts_ns <= high_ts: first_ts between
    low_ts - BLOCK_SPAN_NS and high_ts (a block spans less than that), max_ts >= low_ts (filtered
    by Cassandra, so a skipped block's data never travels)."""
    order = " ORDER BY first_ts DESC, block_id DESC" if direction.backward else ""
    return (
        f"SELECT first_ts, max_ts, data FROM {keyspace}.{BLOCK_TABLE} "
        "WHERE namespace = ? AND pod_name = ? AND container_name = ? AND bucket = ? "
        f"AND first_ts >= ? AND first_ts <= ? AND max_ts >= ?{order} ALLOW FILTERING"
    )


def index_ttl_seconds(settings: Settings) -> int:
    """An index entry outlives every line it points at: a line's TTL runs from its own write, and
    a worker rewrites an entry at most every INDEX_REFRESH_SECONDS while lines keep arriving."""
    if settings.cassandra_ttl_seconds == 0:
        return 0
    return settings.cassandra_ttl_seconds + settings.cassandra_bucket_seconds + INDEX_REFRESH_SECONDS


def alter_default_ttl(keyspace: str, table: str, ttl_seconds: int) -> str:
    """The DDL that gives an existing table another default TTL (rows already written keep theirs).
    The log table's compaction window follows the bucket size, which a keyspace never changes."""
    return f"ALTER TABLE {keyspace}.{table} WITH default_time_to_live = {ttl_seconds}"


def create_stream_index_table(settings: Settings) -> str:
    """Which pod containers had lines in which bucket of a namespace (discovery, whole-pod reads)."""
    return f"""
        CREATE TABLE IF NOT EXISTS {settings.cassandra_keyspace}.{STREAM_INDEX_TABLE} (
            namespace text,
            bucket bigint,
            pod_name text,
            container_name text,
            PRIMARY KEY ((namespace, bucket), pod_name, container_name)
        ) WITH default_time_to_live = {index_ttl_seconds(settings)}
          AND comment = 'kube-insight-logserver: containers with lines per namespace and bucket'"""


def create_namespace_index_table(settings: Settings) -> str:
    return f"""
        CREATE TABLE IF NOT EXISTS {settings.cassandra_keyspace}.{NAMESPACE_INDEX_TABLE} (
            bucket bigint,
            namespace text,
            PRIMARY KEY ((bucket), namespace)
        ) WITH default_time_to_live = {index_ttl_seconds(settings)}
          AND comment = 'kube-insight-logserver: namespaces with lines per bucket'"""


def create_series_index_table(settings: Settings) -> str:
    """Which label sets (a container's, its stream's and its `labels`) had lines in which bucket: the
    Loki API's labels, label values, series and stream selection read this, never the lines. A row
    without a stream has stream ''; without labels, an empty map. The labels are identified by a
    digest of them (labels_id, see labels_id()): a primary key holds at most 64 KiB, labels may not."""
    return f"""
        CREATE TABLE IF NOT EXISTS {settings.cassandra_keyspace}.{SERIES_INDEX_TABLE} (
            bucket bigint,
            namespace text,
            pod_name text,
            container_name text,
            stream text,
            labels_id text,
            labels frozen<map<text, text>>,
            PRIMARY KEY ((bucket), namespace, pod_name, container_name, stream, labels_id)
        ) WITH default_time_to_live = {index_ttl_seconds(settings)}
          AND comment = 'kube-insight-logserver: label sets with lines per bucket'"""


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


def select_range(keyspace: str, direction: Direction) -> str:
    """One partition's lines with (low_ts, low_id) <= (ts_ns, line_id) <= (high_ts, high_id),
    columns in LogLine's order."""
    order = " ORDER BY ts_ns DESC, line_id DESC" if direction.backward else ""
    return (
        f"SELECT ts_ns, pod_name, container_name, line_id, log, stream FROM {keyspace}.{LOG_TABLE} "
        "WHERE namespace = ? "
        "AND pod_name = ? AND container_name = ? AND bucket = ? "
        f"AND (ts_ns, line_id) >= (?, ?) AND (ts_ns, line_id) <= (?, ?){order}"
    )


def insert_stream(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{STREAM_INDEX_TABLE} (namespace, bucket, pod_name, container_name) "
        "VALUES (?, ?, ?, ?)"
    )


def insert_namespace(keyspace: str) -> str:
    return f"INSERT INTO {keyspace}.{NAMESPACE_INDEX_TABLE} (bucket, namespace) VALUES (?, ?)"


def insert_series(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{SERIES_INDEX_TABLE} (bucket, namespace, pod_name, container_name, stream, "
        "labels_id, labels) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )


def select_series(keyspace: str) -> str:
    return (
        f"SELECT namespace, pod_name, container_name, stream, labels FROM {keyspace}.{SERIES_INDEX_TABLE} "
        "WHERE bucket = ?"
    )


def labels_id(items: tuple[tuple[str, str], ...]) -> str:
    """A label set's identity in the series index: a digest of its sorted (name, value) pairs."""
    return hashlib.blake2b(json.dumps(items, ensure_ascii=False).encode(), digest_size=16).hexdigest()


def select_streams(keyspace: str, *, one_pod: bool) -> str:
    """The (pod_name, container_name) entries of a namespace's bucket, or of one pod's."""
    pod = " AND pod_name = ?" if one_pod else ""
    return (
        f"SELECT pod_name, container_name FROM {keyspace}.{STREAM_INDEX_TABLE} "
        f"WHERE namespace = ? AND bucket = ?{pod}"
    )


def select_namespaces(keyspace: str) -> str:
    return f"SELECT namespace FROM {keyspace}.{NAMESPACE_INDEX_TABLE} WHERE bucket = ?"
