"""What a Redis failure says to clients: the dependency and the cause, never the data."""

from __future__ import annotations

import redis

from common.queue import describe_redis_error


def test_a_failed_pipeline_command_is_described_without_its_arguments():
    error = redis.exceptions.OutOfMemoryError(
        "Command # 1 (SET kube-insight:payload:q:abc (\ufffd/\ufffd\x01 secret line)) of pipeline caused error: "
        "command not allowed when used memory > 'maxmemory'.")
    assert describe_redis_error(error) == (
        "Redis: OutOfMemoryError: command not allowed when used memory > 'maxmemory'.")


def test_a_connection_error_keeps_its_cause():
    error = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    assert describe_redis_error(error) == (
        "Redis: ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_a_description_is_printable_and_bounded():
    description = describe_redis_error(redis.exceptions.ResponseError("\x00\x01" + "x" * 5000))
    assert description.isprintable() and len(description) < 400
