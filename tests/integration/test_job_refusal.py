"""On the real Redis (and Cassandra): a pickled job hash is refused, unread, and lands in the failed
registry; a batch queued by the pickle-era version is still written."""

from __future__ import annotations

import pytest

from common.records import LogRow
from tests.conftest import with_changes
from tests.integration.pipeline import build_pipeline, unique
from tests.unit.test_job_refusal import MARKER, MARKS, enqueue_legacy_batch, enqueue_pickled, failed_ids

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(integration_settings, real_store):
    """A queue of this test's own; its keys, and its refused jobs', are deleted afterwards."""
    settings = with_changes(integration_settings, queue_name=unique(f"{integration_settings.queue_name}-refusal"))
    pipeline = build_pipeline(settings, real_store)
    yield pipeline
    redis, queue = pipeline.queue.rq_queue.connection, pipeline.queue.rq_queue
    for job_id in failed_ids(pipeline.queue):
        queue.fetch_job(job_id).delete()
    queue.delete(delete_jobs=True)
    leftovers = list(redis.scan_iter(match=f"*{settings.queue_name}*", count=1000))
    if leftovers:
        redis.delete(*leftovers)


def test_a_pickled_job_hash_is_refused_unread_and_lands_in_the_failed_registry(pipeline):
    MARKS.clear()
    redis = pipeline.queue.rq_queue.connection
    job_id = enqueue_pickled(redis, pipeline.settings.queue_name, MARKER, ("touch /tmp/owned",))
    pipeline.drain()
    assert MARKS == []
    assert failed_ids(pipeline.queue) == [job_id]


def test_a_batch_queued_by_the_pickle_era_version_is_still_written(pipeline):
    namespace = unique("upgrade")
    rows = [LogRow(namespace, "pod", "c", 1_710_000_000 * 10**9 + i, f"queued before the upgrade {i}")
            for i in range(3)]
    job_id = enqueue_legacy_batch(pipeline.queue.rq_queue.connection, pipeline.settings.queue_name, rows)
    pipeline.drain()
    assert failed_ids(pipeline.queue) == [job_id]
    response = pipeline.query(namespace, "pod", "c", "2024-03-09T00:00:00Z", "2024-03-10T00:00:00Z")
    assert [r["log"] for r in response.json["log_rows"]] == [row.log for row in rows]
    assert pipeline.queue.unwritten_batches() == 0
