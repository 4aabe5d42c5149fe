"""Fixtures of the integration tests alone."""

from __future__ import annotations

import pytest

from tests.integration.redis_server import RedisServer


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of the test's own, which it may stop and start again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
