"""common.gc_tuning: the API's collector keeps start-up objects out of collections and runs full
collections ten times less often."""

from __future__ import annotations

import gc

import pytest

from common.gc_tuning import tune_for_service


@pytest.fixture
def restored_collector():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_objects_alive_at_start_up_are_frozen_out_of_collections(restored_collector):
    alive = [[]]
    assert any(o is alive for o in gc.get_objects())
    tune_for_service()
    assert not any(o is alive for o in gc.get_objects())  # frozen: no generation holds it any more


def test_full_collections_run_after_100_middle_generation_passes_not_10(restored_collector):
    tune_for_service()
    assert gc.get_threshold() == (700, 10, 100)
