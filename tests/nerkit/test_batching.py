"""Tests for nerkit.batching: deterministic length-grouped epochs, eval order, padding."""

from __future__ import annotations

import random

import torch

from nerkit.batching import IGNORE, collate, epoch_batches, eval_batches

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(3, 60) for _ in range(500)]


def _padding(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_epoch_covers_every_record_once():
    # Each epoch is a partition of all records into batches of at most batch_size.
    for grouped in (True, False):
        batches = epoch_batches(LENGTHS, 16, seed=1, epoch=0, group_by_length=grouped)
        assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
        assert all(1 <= len(b) <= 16 for b in batches)


def test_order_is_a_function_of_seed_and_epoch():
    # Same (seed, epoch) gives the same batches; another epoch or seed gives others.
    a = epoch_batches(LENGTHS, 16, seed=1, epoch=3)
    assert a == epoch_batches(LENGTHS, 16, seed=1, epoch=3)
    assert a != epoch_batches(LENGTHS, 16, seed=1, epoch=4)
    assert a != epoch_batches(LENGTHS, 16, seed=2, epoch=3)


def test_seeds_do_not_share_epochs_shifted_by_one():
    # (seed, epoch) must mix into the RNG seed so that seed 2's first epoch is not seed 1's
    # second: runs with neighbouring seeds would otherwise see the same batch orders.
    for grouped in (True, False):
        assert epoch_batches(LENGTHS, 16, seed=2, epoch=0, group_by_length=grouped) != \
            epoch_batches(LENGTHS, 16, seed=1, epoch=1, group_by_length=grouped)


def test_grouped_batches_are_not_served_in_length_order():
    # Inside a pool batches are cut from records sorted by length; their order must be
    # shuffled again, or every epoch would run from the shortest batch to the longest.
    batches = epoch_batches(LENGTHS, 16, seed=1, epoch=0)
    widths = [max(LENGTHS[i] for i in b) for b in batches]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


def test_length_grouping_cuts_padding():
    # Grouped batches pad far less than plain shuffled ones.
    grouped = epoch_batches(LENGTHS, 16, seed=1, epoch=0, group_by_length=True)
    plain = epoch_batches(LENGTHS, 16, seed=1, epoch=0, group_by_length=False)
    assert _padding(grouped, LENGTHS) < _padding(plain, LENGTHS) / 4


def test_eval_batches_sorted_by_length():
    # Evaluation batches cover every record in ascending length.
    batches = eval_batches(LENGTHS, 64)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(LENGTHS)))
    assert [LENGTHS[i] for i in flat] == sorted(LENGTHS)


def test_collate_pads_ids_mask_and_labels():
    # Records are padded to the longest chosen one: pad id, mask 0, label -100.
    ids = [[101, 5, 6, 102], [101, 7, 102], [101, 102]]
    labels = [[IGNORE, 1, 0, IGNORE], [IGNORE, 2, IGNORE], [IGNORE, IGNORE]]
    batch = collate(ids, labels, [1, 0], pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 7, 102, 0], [101, 5, 6, 102]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[IGNORE, 2, IGNORE, IGNORE], [IGNORE, 1, 0, IGNORE]]
    assert batch["input_ids"].dtype == torch.long
    assert "labels" not in collate(ids, None, [2], pad_id=0)


def test_the_pool_size_can_be_given_and_changes_the_order():
    # A resumed run passes the pool its checkpoint recorded (TrainingState.pool_batches).
    from nerkit.batching import POOL_BATCHES

    default = epoch_batches(LENGTHS, 4, seed=1, epoch=0)
    assert epoch_batches(LENGTHS, 4, seed=1, epoch=0, pool_batches=POOL_BATCHES) == default
    assert epoch_batches(LENGTHS, 4, seed=1, epoch=0, pool_batches=50) != default
