"""common.schema: the CQL text built from settings (pure, no Cassandra)."""

from __future__ import annotations

import re

import pytest

from common.log_store import Direction
from common.schema import (
    LOG_TABLE,
    SETTINGS_TABLE,
    alter_default_ttl,
    compaction_window,
    create_keyspace,
    create_log_table,
    create_settings_table,
    create_namespace_index_table,
    create_stream_index_table,
    index_ttl_seconds,
    insert_row,
    select_range,
)
from common.settings import Settings, build_settings


def one_line(cql: str) -> str:
    return re.sub(r"\s+", " ", cql).strip()


# --- compaction_window ---


@pytest.mark.parametrize(
    "bucket_seconds, window",
    [
        (86400, ("DAYS", 1)),
        (7 * 86400, ("DAYS", 7)),
        (3600, ("HOURS", 1)),
        (7200, ("HOURS", 2)),
        (90000, ("HOURS", 25)),
        (60, ("MINUTES", 1)),
        (900, ("MINUTES", 15)),
        (5400, ("MINUTES", 90)),
    ],
)
def test_the_compaction_window_is_one_bucket_in_the_coarsest_whole_unit(bucket_seconds, window):
    assert compaction_window(bucket_seconds) == window


def test_a_bucket_that_is_not_whole_minutes_gets_a_window_of_its_whole_minutes():
    assert compaction_window(90) == ("MINUTES", 1)
    assert compaction_window(150) == ("MINUTES", 2)


# --- CREATE TABLE ---


def test_the_log_table_uses_twcs_with_a_window_of_one_bucket():
    cql = one_line(create_log_table(Settings(cassandra_bucket_seconds=86400)))
    assert "'class': 'TimeWindowCompactionStrategy'" in cql
    assert "'compaction_window_unit': 'DAYS', 'compaction_window_size': 1" in cql


def test_the_log_table_carries_the_configured_ttl():
    cql = one_line(create_log_table(Settings(cassandra_ttl_seconds=604800)))
    assert "default_time_to_live = 604800" in cql


def test_the_default_log_table_keeps_rows_forever_in_hour_windows():
    cql = one_line(create_log_table(build_settings()))
    assert "default_time_to_live = 0" in cql
    assert "'compaction_window_unit': 'HOURS', 'compaction_window_size': 1" in cql


def test_the_log_table_is_keyed_by_container_and_bucket_then_ordered_by_time_and_line_id():
    cql = one_line(create_log_table(Settings()))
    assert cql.startswith(f"CREATE TABLE IF NOT EXISTS insight_logs.{LOG_TABLE} (")
    assert "PRIMARY KEY ((namespace, pod_name, container_name, bucket), ts_ns, line_id)" in cql
    assert "CLUSTERING ORDER BY (ts_ns ASC, line_id ASC)" in cql


def test_the_tables_live_in_the_configured_keyspace():
    settings = Settings(cassandra_keyspace="team_logs")
    assert f"team_logs.{LOG_TABLE}" in create_log_table(settings)
    assert create_settings_table(settings) == (
        f"CREATE TABLE IF NOT EXISTS team_logs.{SETTINGS_TABLE} (name text PRIMARY KEY, value text)"
    )


# --- CREATE KEYSPACE ---


def test_the_default_keyspace_uses_simple_strategy_with_one_replica():
    assert create_keyspace(Settings()) == (
        "CREATE KEYSPACE IF NOT EXISTS insight_logs WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )


def test_network_topology_strategy_lists_each_data_center_factor():
    settings = build_settings(env={
        "CASSANDRA_KEYSPACE": "logs",
        "CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy",
        "CASSANDRA_REPLICATION_FACTORS": '{"dc1": 3, "dc2": 2}',
    })
    assert create_keyspace(settings) == (
        "CREATE KEYSPACE IF NOT EXISTS logs WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
    )


# --- statements ---


def test_the_insert_binds_one_marker_per_column():
    cql = insert_row("logs")
    columns = re.search(r"\(([^)]*)\) VALUES", cql).group(1).split(", ")
    assert cql.startswith(f"INSERT INTO logs.{LOG_TABLE} ")
    assert columns == ["namespace", "pod_name", "container_name", "bucket", "ts_ns", "line_id",
                       "log", "stream", "host", "pod_id", "docker_id", "labels"]
    assert cql.count("?") == len(columns)


def test_a_range_select_reads_one_partition_between_two_inclusive_positions():
    cql = select_range("logs", Direction.FORWARD)
    assert f"FROM logs.{LOG_TABLE} " in cql
    assert "bucket = ?" in cql
    assert "(ts_ns, line_id) >= (?, ?) AND (ts_ns, line_id) <= (?, ?)" in cql
    assert "ORDER BY" not in cql


def test_a_backward_range_select_reads_newest_first():
    assert select_range("logs", Direction.BACKWARD).endswith("ORDER BY ts_ns DESC, line_id DESC")


def test_the_index_tables_are_partitioned_by_namespace_and_bucket():
    settings = Settings(cassandra_keyspace="logs")
    assert "PRIMARY KEY ((namespace, bucket), pod_name, container_name)" in one_line(
        create_stream_index_table(settings))
    assert "PRIMARY KEY ((bucket), namespace)" in one_line(create_namespace_index_table(settings))


def test_index_entries_never_expire_when_lines_never_do():
    assert index_ttl_seconds(Settings(cassandra_ttl_seconds=0)) == 0


def test_index_entries_outlive_the_lines_they_point_at():
    settings = Settings(cassandra_ttl_seconds=86400, cassandra_bucket_seconds=3600)
    assert index_ttl_seconds(settings) >= 86400 + 3600


def test_a_changed_ttl_is_applied_by_altering_the_existing_table():
    assert alter_default_ttl("logs", LOG_TABLE, 3600) == (
        "ALTER TABLE logs.log_lines WITH default_time_to_live = 3600")
