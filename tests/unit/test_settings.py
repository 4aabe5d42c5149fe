"""common.settings.build_settings: defaults, environment, flags, and a clear error for every bad value."""

from __future__ import annotations

import argparse

import pytest

from common.queue import connect_redis
from common.settings import OPTIONS, Settings, SettingsError, add_options, build_settings, example_secrets

# One value each option cannot run with. Username and password accept any text, so they have none.
BAD_VALUES = {
    "tenant_id": "team/a",
    "ip": "   ",
    "port": "65536",
    "api_threads": "1",
    "api_processes": "0",
    "redis_sentinels": "127.0.0.1",
    "redis_sentinel_master": " ",
    "redis_wait_replicas": "-1",
    "max_body_bytes": "1023",
    "max_line_bytes": "63",
    "fluent_bit_date_key": "  ",
    "fluent_bit_offset_key": "",
    "fluent_bit_path_key": " ",
    "loki_namespace_label": "namespace-name",
    "loki_pod_label": "1pod",
    "loki_container_label": "",
    "loki_stream_label": "stream name",
    "query_max_rows": "0",
    "query_max_range_seconds": "0",
    "query_max_stream_rows": "0",
    "query_max_scan_rows": "-5",
    "query_timeout_seconds": "0",
    "tail_poll_seconds": "soon",
    "tail_lookback_seconds": "3601",
    "tail_max_seconds": "0",
    "reader_stall_seconds": "0",
    "enable_profiling": "maybe",
    "redis_url": "http://127.0.0.1:6379",
    "redis_timeout_seconds": "0",
    "queue_name": "",
    "queue_high_water_mark": "0",
    "retry_after_seconds": "0",
    "cassandra_hosts": " , ",
    "cassandra_port": "0",
    "cassandra_keyspace": "1logs",
    "cassandra_replication_strategy": "simplestrategy",
    "cassandra_replication_factors": "3",
    "cassandra_consistency": "SOME",
    "cassandra_write_consistency": "MOST",
    "cassandra_read_consistency": "QUORUM_ISH",
    "cassandra_bucket_seconds": "59",
    "cassandra_ttl_seconds": "-1",
    "cassandra_timeout_seconds": "-1",
    "cassandra_layout": "columns",
    "cassandra_write_mode": "sync",
    "cassandra_write_concurrency": "0",
    "worker_metrics_port": "-1",
    "worker_batches_per_write": "0",
    "worker_write_max_bytes": "512",
    "worker_batches_per_job": "0",
    "block_merge_after_seconds": "-1",
    "worker_burst": "perhaps",
    "job_timeout_seconds": "4",
    "job_retry_intervals": "1,x",
    "maintenance_interval_seconds": "4",
    "log_level": "VERBOSE",
}
FREE_TEXT = {"ingest_token", "query_token", "redis_password", "redis_sentinel_password", "cassandra_username",
             "cassandra_password", "cassandra_local_dc"}
VALIDATED = [o for o in OPTIONS if o.field not in FREE_TEXT]


def scope_of(option) -> str:
    return "worker" if option.scope == "worker" else "api"


def parse_command_line(argv: list[str], scope: str = "api") -> dict:
    parser = argparse.ArgumentParser()
    add_options(parser, scope)
    return vars(parser.parse_args(argv))


# --- defaults ---


def test_nothing_set_gives_the_defaults():
    assert build_settings() == Settings()
    assert build_settings({}, {}, scope="worker") == Settings()


def test_the_defaults_match_the_seed():
    settings = build_settings()
    assert (settings.ip, settings.port) == ("0.0.0.0", 8080)
    assert settings.cassandra_hosts == ("127.0.0.1",)
    assert settings.cassandra_replication_strategy == "SimpleStrategy"
    assert settings.cassandra_replication_factors == {"cluster": 1}
    assert settings.enable_profiling is False


def test_unset_flags_from_the_command_line_leave_the_defaults():
    assert build_settings(parse_command_line([])) == Settings()


# --- environment ---


def test_environment_variables_are_applied_and_parsed():
    settings = build_settings(env={
        "IP": "127.0.0.1",
        "PORT": "9000",
        "ENABLE_PROFILING": "yes",
        "CASSANDRA_HOSTS": "cass-1, cass-2,",
        "CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy",
        "CASSANDRA_REPLICATION_FACTORS": '{"dc1": 3, "dc2": 2}',
        "CASSANDRA_CONSISTENCY": "local_one",
        "JOB_RETRY_INTERVALS": "1, 5,30",
        "REDIS_TIMEOUT_SECONDS": "0.25",
        "LOG_LEVEL": "debug",
    })
    assert settings.ip == "127.0.0.1"
    assert settings.port == 9000
    assert settings.enable_profiling is True
    assert settings.cassandra_hosts == ("cass-1", "cass-2")
    assert settings.cassandra_replication_factors == {"dc1": 3, "dc2": 2}
    assert settings.cassandra_consistency == "LOCAL_ONE"
    assert settings.job_retry_intervals == (1, 5, 30)
    assert settings.redis_timeout_seconds == 0.25
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize("text, value", [("1", True), ("TRUE", True), ("on", True), ("0", False),
                                         ("False", False), ("off", False), ("", False)])
def test_boolean_variables_accept_the_usual_spellings(text, value):
    assert build_settings(env={"ENABLE_PROFILING": text}).enable_profiling is value


def test_variables_unknown_to_the_program_are_ignored():
    assert build_settings(env={"HOME": "/root", "PATH": "/bin"}) == Settings()


def test_worker_only_variables_are_ignored_by_the_api():
    assert build_settings(env={"CASSANDRA_WRITE_MODE": "not-a-mode"}, scope="api") == Settings()


def test_api_only_variables_are_ignored_by_the_worker():
    assert build_settings(env={"PORT": "not-a-port"}, scope="worker") == Settings()


# --- flags ---


def test_a_flag_wins_over_its_environment_variable():
    assert build_settings({"port": "7000"}, {"PORT": "9000"}).port == 7000


def test_a_flag_that_was_not_given_falls_back_to_the_environment():
    assert build_settings({"port": None}, {"PORT": "9000"}).port == 9000


def test_command_line_flags_are_parsed_like_variables():
    flags = parse_command_line(["--port", "7000", "--log-level", "warning", "--cassandra-hosts", "a,b"])
    settings = build_settings(flags, {"PORT": "9000"})
    assert (settings.port, settings.log_level, settings.cassandra_hosts) == (7000, "WARNING", ("a", "b"))


def test_a_boolean_flag_without_a_value_turns_the_option_on():
    flags = parse_command_line(["--enable-profiling"])
    assert build_settings(flags, {"ENABLE_PROFILING": "false"}).enable_profiling is True


def test_a_boolean_flag_with_false_turns_the_option_off_over_the_environment():
    flags = parse_command_line(["--burst", "false"], scope="worker")
    assert build_settings(flags, {"WORKER_BURST": "true"}, scope="worker").worker_burst is False


def test_positional_hosts_win_over_cassandra_hosts():
    flags = parse_command_line(["node-a", "node-b"])
    settings = build_settings(flags, {"CASSANDRA_HOSTS": "env-host"})
    assert settings.cassandra_hosts == ("node-a", "node-b")


def test_positional_hosts_win_over_the_cassandra_hosts_flag_too():
    settings = build_settings({"cassandra_hosts": "flag-host", "hosts": ["node-a"]})
    assert settings.cassandra_hosts == ("node-a",)


def test_without_positional_hosts_cassandra_hosts_is_used():
    flags = parse_command_line([])
    assert build_settings(flags, {"CASSANDRA_HOSTS": "env-host"}).cassandra_hosts == ("env-host",)


# --- bad values ---


def test_every_option_with_a_validated_value_has_a_bad_value_under_test():
    assert {o.field for o in VALIDATED} == set(BAD_VALUES)


@pytest.mark.parametrize("option", VALIDATED, ids=lambda o: o.env)
def test_a_bad_environment_value_raises_an_error_naming_the_variable(option):
    with pytest.raises(SettingsError) as raised:
        build_settings(env={option.env: BAD_VALUES[option.field]}, scope=scope_of(option))
    assert str(raised.value).startswith(f"invalid {option.env}: ")


@pytest.mark.parametrize("option", VALIDATED, ids=lambda o: o.flag)
def test_a_bad_flag_value_raises_an_error_naming_the_flag_and_its_variable(option):
    with pytest.raises(SettingsError) as raised:
        build_settings({option.field: BAD_VALUES[option.field]}, scope=scope_of(option))
    assert str(raised.value).startswith(f"invalid {option.flag} ({option.env}): ")


def test_a_bad_flag_is_reported_even_when_the_environment_holds_a_good_value():
    with pytest.raises(SettingsError, match=r"invalid --port \(PORT\)"):
        build_settings({"port": "http"}, {"PORT": "9000"})


@pytest.mark.parametrize("text", ["0", "65536", "-1", "8080.5", "eighty"])
def test_a_port_outside_1_to_65535_or_not_a_whole_number_is_rejected(text):
    with pytest.raises(SettingsError, match="invalid PORT"):
        build_settings(env={"PORT": text})


@pytest.mark.parametrize("text", ["0", "-0.5", "nan", "soon"])
def test_a_timeout_must_be_a_positive_number(text):
    with pytest.raises(SettingsError, match="invalid REDIS_TIMEOUT_SECONDS"):
        build_settings(env={"REDIS_TIMEOUT_SECONDS": text})


@pytest.mark.parametrize("variable", ["REDIS_TIMEOUT_SECONDS", "CASSANDRA_TIMEOUT_SECONDS"])
@pytest.mark.parametrize("text", ["inf", "1e400"])
def test_an_infinite_timeout_is_rejected(variable, text):
    # redis-py would raise OverflowError from socket.settimeout(inf) on its first call instead.
    with pytest.raises(SettingsError, match=f"invalid {variable}"):
        build_settings(env={variable: text})


@pytest.mark.parametrize("text", ["[1]", "{}", '{"dc1": 0}', '{"dc1": 1.5}', '{"dc1": true}', '{"dc1": "3"}', "{dc1: 3}"])
def test_replication_factors_must_be_a_non_empty_map_of_positive_integers(text):
    with pytest.raises(SettingsError, match="invalid CASSANDRA_REPLICATION_FACTORS"):
        build_settings(env={"CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy",
                            "CASSANDRA_REPLICATION_FACTORS": text})


@pytest.mark.parametrize("text", ["1logs", "_logs", "my-logs", "my logs", "", "k" * 49])
def test_a_keyspace_that_is_not_a_cql_identifier_is_rejected(text):
    with pytest.raises(SettingsError, match="invalid CASSANDRA_KEYSPACE"):
        build_settings(env={"CASSANDRA_KEYSPACE": text})


def test_a_keyspace_of_48_letters_digits_and_underscores_is_accepted():
    name = "k_1" * 16
    assert build_settings(env={"CASSANDRA_KEYSPACE": name}).cassandra_keyspace == name


@pytest.mark.parametrize("text", ["café", "logs²", "ｌｏｇｓ"])
def test_a_keyspace_with_non_ascii_characters_is_rejected(text):
    # Spliced unquoted into CQL: only Cassandra's ASCII identifier alphabet is safe.
    with pytest.raises(SettingsError, match="invalid CASSANDRA_KEYSPACE"):
        build_settings(env={"CASSANDRA_KEYSPACE": text})


@pytest.mark.parametrize("text", ["", ",", "-1", "1,-5", "1.5"])
def test_retry_intervals_must_be_non_negative_whole_seconds(text):
    with pytest.raises(SettingsError, match="invalid JOB_RETRY_INTERVALS"):
        build_settings(env={"JOB_RETRY_INTERVALS": text}, scope="worker")


def test_loki_label_names_accept_the_kubernetes_field_names():
    env = {"LOKI_NAMESPACE_LABEL": "namespace_name", "LOKI_POD_LABEL": "pod_name",
           "LOKI_CONTAINER_LABEL": "container_name", "LOKI_STREAM_LABEL": "_stream"}
    settings = build_settings(env=env)
    assert (settings.loki_namespace_label, settings.loki_pod_label, settings.loki_container_label,
            settings.loki_stream_label) == ("namespace_name", "pod_name", "container_name", "_stream")


def test_two_loki_name_settings_naming_the_same_label_are_rejected():
    with pytest.raises(SettingsError, match="must be four different labels, got pod, pod, container, stream"):
        build_settings(env={"LOKI_NAMESPACE_LABEL": "pod"})


def test_simple_strategy_with_two_factors_is_rejected_naming_the_factors_option():
    with pytest.raises(SettingsError) as raised:
        build_settings(env={"CASSANDRA_REPLICATION_FACTORS": '{"dc1": 3, "dc2": 3}'})
    message = str(raised.value)
    assert "--cassandra-replication-factors" in message
    assert "CASSANDRA_REPLICATION_FACTORS" in message
    assert "SimpleStrategy" in message


def test_network_topology_strategy_takes_several_factors():
    settings = build_settings(env={"CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy",
                                   "CASSANDRA_REPLICATION_FACTORS": '{"dc1": 3, "dc2": 3}'})
    assert settings.cassandra_replication_factors == {"dc1": 3, "dc2": 3}


@pytest.mark.parametrize("env", [{"CASSANDRA_USERNAME": "logs"}, {"CASSANDRA_PASSWORD": "secret"}])
def test_a_username_without_a_password_or_the_reverse_is_rejected(env):
    with pytest.raises(SettingsError, match="CASSANDRA_USERNAME and CASSANDRA_PASSWORD"):
        build_settings(env=env)


def test_a_username_and_password_together_are_accepted_and_the_password_is_not_printed():
    settings = build_settings(env={"CASSANDRA_USERNAME": "logs", "CASSANDRA_PASSWORD": "s3cret"})
    assert (settings.cassandra_username, settings.cassandra_password) == ("logs", "s3cret")
    assert "s3cret" not in repr(settings)


def test_the_redis_password_reaches_the_client_and_is_not_printed():
    settings = build_settings(env={"REDIS_PASSWORD": "r3dis-s3cret"}, scope="worker")
    assert connect_redis(settings).connection_pool.connection_kwargs["password"] == "r3dis-s3cret"
    assert "r3dis-s3cret" not in repr(settings)


def test_without_a_redis_password_the_client_sends_none():
    assert connect_redis(Settings()).connection_pool.connection_kwargs["password"] is None


def test_example_secrets_from_the_shipped_files_are_named_for_a_warning():
    settings = Settings(redis_password="CHANGE-ME-redis", query_token="q-token-of-my-own")
    assert example_secrets(settings) == ["REDIS_PASSWORD"]


def test_the_offset_and_path_keys_default_to_the_names_the_shipped_fluent_bit_configs_set():
    settings = build_settings(env={})
    assert (settings.fluent_bit_offset_key, settings.fluent_bit_path_key) == ("offset", "log_file")


@pytest.mark.parametrize("env", [
    {"FLUENT_BIT_OFFSET_KEY": "log_file"},
    {"FLUENT_BIT_PATH_KEY": "date"},
    {"FLUENT_BIT_OFFSET_KEY": "time"},
    {"FLUENT_BIT_PATH_KEY": "log"},
    {"FLUENT_BIT_DATE_KEY": "offset"},
])
def test_the_date_offset_and_path_keys_must_be_distinct_and_no_fixed_record_key(env):
    with pytest.raises(SettingsError, match="three different record keys"):
        build_settings(env=env)


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


# --- replication_map ---


def test_writes_and_reads_default_to_cassandra_consistency():
    settings = build_settings(env={"CASSANDRA_CONSISTENCY": "quorum"})
    assert (settings.write_consistency(), settings.read_consistency()) == ("QUORUM", "QUORUM")


def test_the_default_consistency_of_writes_and_reads_is_local_quorum():
    assert (Settings().write_consistency(), Settings().read_consistency()) == ("LOCAL_QUORUM", "LOCAL_QUORUM")


def test_read_consistency_may_be_lowered_while_writes_keep_cassandra_consistency():
    settings = build_settings(env={"CASSANDRA_CONSISTENCY": "LOCAL_QUORUM", "CASSANDRA_READ_CONSISTENCY": "local_one"})
    assert (settings.write_consistency(), settings.read_consistency()) == ("LOCAL_QUORUM", "LOCAL_ONE")


def test_write_consistency_wins_over_cassandra_consistency_for_writes_only():
    settings = build_settings(env={"CASSANDRA_CONSISTENCY": "ONE", "CASSANDRA_WRITE_CONSISTENCY": "EACH_QUORUM"})
    assert (settings.write_consistency(), settings.read_consistency()) == ("EACH_QUORUM", "ONE")


def test_simple_strategy_replication_map_uses_the_single_factor():
    settings = build_settings(env={"CASSANDRA_REPLICATION_FACTORS": '{"cluster": 3}'})
    assert settings.replication_map() == {"class": "SimpleStrategy", "replication_factor": 3}


def test_the_default_replication_map_is_simple_strategy_with_one_replica():
    assert Settings().replication_map() == {"class": "SimpleStrategy", "replication_factor": 1}


def test_network_topology_replication_map_lists_every_data_center():
    settings = build_settings(env={"CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy",
                                   "CASSANDRA_REPLICATION_FACTORS": '{"dc1": 3, "dc2": 2}'})
    assert settings.replication_map() == {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2}


def test_redis_sentinels_are_host_port_pairs():
    settings = build_settings(env={"REDIS_SENTINELS": "127.0.0.1:26380, redis-sentinel.ns:26379"})
    assert settings.redis_sentinels == (("127.0.0.1", 26380), ("redis-sentinel.ns", 26379))


def test_sentinel_password_goes_to_the_sentinels_and_the_redis_password_to_the_primary():
    settings = build_settings(env={"REDIS_SENTINELS": "127.0.0.1:26380", "REDIS_SENTINEL_PASSWORD": "s3ntinel",
                                   "REDIS_PASSWORD": "r3dis"})
    client = connect_redis(settings)
    (sentinel,) = client.connection_pool.sentinel_manager.sentinels
    assert sentinel.connection_pool.connection_kwargs["password"] == "s3ntinel"
    assert client.connection_pool.connection_kwargs["password"] == "r3dis"
