"""scripts/redis-ha.sh (a Redis primary, a replica and three Sentinels) on private ports and folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import redis

from tests.integration.redis_server import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "redis-ha.sh"
MASTER = "logserver"


class RedisHA:
    def __init__(self, directory: Path):
        self.directory = directory
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinels = tuple(("127.0.0.1", free_port()) for _ in range(3))
        self._env = {**os.environ, "REDIS_HA_DIR": str(directory), "REDIS_HA_PRIMARY_PORT": str(self.primary_port),
                     "REDIS_HA_REPLICA_PORT": str(self.replica_port),
                     "REDIS_HA_SENTINEL_PORTS": " ".join(str(port) for _, port in self.sentinels)}

    @property
    def sentinels_env(self) -> str:
        """REDIS_SENTINELS for these Sentinels."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def run(self, *args: str) -> None:
        subprocess.run([str(SCRIPT), *args], env=self._env, check=True, timeout=60)

    def pid(self, node: str) -> int:
        return int((self.directory / f"{node}.pid").read_text())

    def master_port(self) -> int:
        """The primary's port as the first Sentinel names it."""
        host, port = self.sentinels[0]
        return int(redis.Redis(host=host, port=port).sentinel_get_master_addr_by_name(MASTER)[1])
