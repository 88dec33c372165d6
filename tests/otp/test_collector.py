"""The garbage collector set for a long-running node, and put back after."""

import gc

import pytest

from trunkline import otp


def test_the_young_threshold_is_raised_for_the_block_and_put_back() -> None:
    before = gc.get_threshold()
    with otp.tuned_collector(12_345):
        assert gc.get_threshold() == (12_345, *before[1:])
    assert gc.get_threshold() == before


def test_freeze_takes_what_exists_out_of_collections_until_the_block_ends() -> None:
    assert gc.get_freeze_count() == 0
    with otp.tuned_collector() as freeze:
        kept = [object() for _ in range(10)]
        freeze()
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())
    assert gc.get_freeze_count() == 0


def test_what_someone_else_froze_stays_frozen() -> None:
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        with otp.tuned_collector() as freeze:
            freeze()
        assert gc.get_freeze_count() >= theirs
    finally:
        gc.unfreeze()


def test_a_threshold_below_one_is_refused_and_changes_nothing() -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="at least 1"), otp.tuned_collector(0):
        pass
    assert gc.get_threshold() == before
