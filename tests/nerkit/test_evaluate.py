"""Evaluation of a model over a split: predictions, loss and the gold-entity probability."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nerkit.batching import collate
from nerkit.config import DataConfig
from nerkit.evaluate import evaluate_split, predict_split
from nerkit.features import prepare_data
from nerkit.metrics import IGNORE
from nerkit.model import load_model


@pytest.fixture(scope="module")
def model_and_dev(tiny_model_dir, small_data_dir):
    prepared = prepare_data(DataConfig(path=str(small_data_dir)), str(tiny_model_dir))
    torch.manual_seed(0)
    return load_model(str(tiny_model_dir), prepared.label_map), prepared


def test_gold_entity_prob_is_mean_entity_mass_at_gold_entity_tokens(model_and_dev):
    # Computed record by record here, batched (sorted, padded) there: the same number,
    # 1 - P(O) averaged over counted tokens whose gold label is an entity, nothing else.
    model, prepared = model_and_dev
    dev, o_id = prepared.dev, prepared.label_map.o_id
    model.eval()
    masses = []
    with torch.no_grad():
        for i in range(len(dev.input_ids)):
            batch = collate(dev.input_ids, dev.labels, [i], prepared.pad_token_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[0]
            for pos, y in enumerate(dev.labels[i]):
                if y not in (IGNORE, o_id):
                    masses.append(1.0 - torch.softmax(logits[pos], -1)[o_id].item())
    assert len(masses) > 20
    got = predict_split(model, dev, pad_id=prepared.pad_token_id, device=torch.device("cpu"), batch_size=7)
    assert got.gold_entity_prob == pytest.approx(sum(masses) / len(masses), abs=1e-5)
    metrics = evaluate_split(model, dev, prepared.label_map, pad_id=prepared.pad_token_id, device=torch.device("cpu"))
    assert metrics["gold_entity_prob"] == pytest.approx(got.gold_entity_prob, abs=1e-5)
    assert len(got.preds) == len(dev.input_ids) and got.loss > 0


def test_gold_entity_prob_is_none_without_gold_entities(model_and_dev):
    # A split with no entity token has nothing to average: None, not 0 (0 would read as
    # "fully collapsed" to the guard).
    model, prepared = model_and_dev
    o_id = prepared.label_map.o_id
    only_o = dataclasses.replace(prepared.dev, labels=[[y if y == IGNORE else o_id for y in row]
                                                       for row in prepared.dev.labels])
    got = predict_split(model, only_o, pad_id=prepared.pad_token_id, device=torch.device("cpu"))
    assert got.gold_entity_prob is None


def test_loss_is_the_weighted_mean_over_the_split_whatever_the_batch_size(model_and_dev):
    # The loss is token_loss over every counted dev token at once (sum w*l / sum w), not a
    # mean of batch means, which moved with batch_size and the length sort.
    from nerkit.losses import token_loss

    model, prepared = model_and_dev
    dev = prepared.dev
    weights = torch.linspace(0.2, 40.0, len(prepared.label_map))
    model.eval()
    with torch.no_grad():
        everything = collate(dev.input_ids, dev.labels, list(range(len(dev.input_ids))), prepared.pad_token_id)
        logits = model(input_ids=everything["input_ids"], attention_mask=everything["attention_mask"]).logits
        expected = float(token_loss(logits, everything["labels"], weights, gamma=2.0))
    for batch_size in (3, 7, 64):
        got = predict_split(model, dev, pad_id=prepared.pad_token_id, device=torch.device("cpu"),
                            batch_size=batch_size, weights=weights, gamma=2.0)
        assert got.loss == pytest.approx(expected, rel=1e-5)


class _Oracle(torch.nn.Module):
    """Logits that pick the given label id at each position of each record (by input ids)."""

    def __init__(self, split, picks, n_labels):
        super().__init__()
        self.table = {tuple(ids): row for ids, row in zip(split.input_ids, picks)}
        self.n_labels = n_labels

    def forward(self, input_ids, attention_mask):
        out = torch.zeros(*input_ids.shape, self.n_labels)
        for b, (ids, mask) in enumerate(zip(input_ids.tolist(), attention_mask.tolist())):
            for pos, label in enumerate(self.table[tuple(ids[:sum(mask)])]):
                out[b, pos, max(label, 0)] = 10.0
        return type("Out", (), {"logits": out})()


def test_with_every_subword_labelled_the_metrics_still_count_each_word_once(tiny_model_dir, small_data_dir):
    # With label_all_subwords the continuation subwords carry labels for the loss. A model
    # right at every word's first subword (what predict reads) and 'O' on continuations
    # tags every word right: F1 1.0 over as many tokens as words (0.36 over subwords before).
    prepared = prepare_data(DataConfig(path=str(small_data_dir)), str(tiny_model_dir), label_all_subwords=True)
    dev, lm = prepared.dev, prepared.label_map
    words = dev.word_labels()
    labelled = sum(label != IGNORE for row in dev.labels for label in row)
    counted = sum(label != IGNORE for row in words for label in row)
    assert labelled > counted
    picks = [[y if y != IGNORE else lm.o_id for y in row] for row in words]
    metrics = evaluate_split(_Oracle(dev, picks, len(lm.labels)), dev, lm, pad_id=prepared.pad_token_id,
                             device=torch.device("cpu"))
    assert metrics["f1"] == 1.0 and metrics["token_accuracy"] == 1.0
    assert metrics["counted_tokens"] == sum(len({w for w in ids if w is not None}) for ids in dev.word_ids)
    # Without it, the word labels are the labels themselves.
    first = prepare_data(DataConfig(path=str(small_data_dir)), str(tiny_model_dir))
    assert first.dev.word_labels() == first.dev.labels


def test_entities_cut_off_by_max_length_are_scored_as_missed(tiny_model_dir, small_data_dir):
    # At a max_length that cuts dev records, an oracle right on every word it sees still
    # misses the entities beyond the cut (and gets those the cut split in two wrong):
    # recall below 1, and every word counted.
    prepared = prepare_data(DataConfig(path=str(small_data_dir)), str(tiny_model_dir), max_length=8)
    dev, lm = prepared.dev, prepared.label_map
    assert dev.num_truncated > 0 and any(y != lm.o_id for row in dev.cut_labels for y in row)
    picks = [[y if y != IGNORE else lm.o_id for y in row] for row in dev.word_labels()]
    metrics = evaluate_split(_Oracle(dev, picks, len(lm.labels)), dev, lm, pad_id=prepared.pad_token_id,
                             device=torch.device("cpu"))
    assert metrics["recall"] < 1.0
    kept = sum(len({w for w in ids if w is not None}) for ids in dev.word_ids)
    assert metrics["counted_tokens"] == kept + sum(map(len, dev.cut_labels))
