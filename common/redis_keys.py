"""Every Redis key this project writes or reads itself; RQ names its own (`rq:...`).

All of them start with `kube-insight:` and name the queue they belong to, so several deployments
(or test sessions) can share one Redis without touching each other's keys.
"""

from __future__ import annotations

PAYLOAD_KEY_PREFIX = "kube-insight:payload:"
"""A queued batch (msgpack + zstd), under `<prefix><queue name>:<job id>`. Written with its job in
one MULTI/EXEC, deleted once Cassandra holds every row: the source of truth for unwritten batches."""

ORPHAN_SCAN_LOCK_PREFIX = "kube-insight:orphan-scan:"
"""`<prefix><queue name>`: held (SET NX EX, value the worker's name) by the one worker that scans
for orphaned payloads in a maintenance pass, expiring just before the next pass."""

CLAIM_KEY_PREFIX = "kube-insight:claimed:"
"""`<prefix><queue name>:<job id>`: a list of the queued jobs that the running job <job id> took
from the queue to write together with its own batch (BatchQueue.claim_queued). It expires
CLAIM_TTL_SECONDS after its worker's last beat: the jobs of a dead worker's claim are then orphans,
queued again by the next maintenance pass."""

MERGE_CANDIDATES_PREFIX = "kube-insight:merge-candidates:"
"""`<prefix><queue name>`: a sorted set of partitions (JSON [namespace, pod, container, bucket])
that a write left with small blocks, scored by when that was first noted (common.merge_candidates)."""


def payload_key_prefix(queue_name: str) -> str:
    """The prefix of every payload key of one queue; a payload key is this plus the job id."""
    return f"{PAYLOAD_KEY_PREFIX}{queue_name}:"


def orphan_scan_lock_key(queue_name: str) -> str:
    return f"{ORPHAN_SCAN_LOCK_PREFIX}{queue_name}"


def claim_key_prefix(queue_name: str) -> str:
    """The prefix of every claim list of one queue; a claim key is this plus the claiming job's id."""
    return f"{CLAIM_KEY_PREFIX}{queue_name}:"


def merge_candidates_key(queue_name: str) -> str:
    return f"{MERGE_CANDIDATES_PREFIX}{queue_name}"
