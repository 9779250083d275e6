"""Tests for nerkit.predict and `nerkit predict`: tag runs to entities with exact character spans."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from nerkit.alignment import load_tokenizer
from nerkit.cli import build_app
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.predict import Entity, Predictor, tags_to_spans
from nerkit.text import split_words
from nerkit.train import train

HINGLISH = "tushar se 2 misal mangwao, jaldi!"
DEVANAGARI = "तुषार से 2 मिसल, मंगवाओ!"
EMOJI = "pizza ❤️ bhejo\u200b jaldi"  # U+FE0F and U+200B get no subword from the tokenizer


class _Scripted(torch.nn.Module):
    """A stand-in model: B-FOOD at the first real token, then ``rest`` everywhere."""

    def __init__(self, rest: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(id2label={0: "O", 1: "B-FOOD", 2: "I-FOOD"})
        self.rest = rest

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, 3)
        logits[..., self.rest] = 1.0
        logits[:, 1, :] = torch.tensor([0.0, 2.0, 0.0])
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, small_data_dir, tmp_path_factory):
    """A tiny model trained one epoch with entity-heavy weights (so it predicts some entities)."""
    out = tmp_path_factory.mktemp("predict") / "model"
    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=1,
                      batch_size=16, learning_rate=1e-3, num_threads=1, weight_strategy="seed",
                      o_weight=0.5, entity_boost=3.0)
    train(cfg, output_dir=out)
    return out


def test_tags_to_spans():
    # B/I runs merge; a stray I- starts an entity; B after B and a type change split entities.
    assert tags_to_spans(["B-STORE", "I-STORE", "O", "I-FOOD"]) == [("STORE", 0, 2), ("FOOD", 3, 4)]
    assert tags_to_spans(["B-FOOD", "B-FOOD", "I-FOOD", "I-LOC", "O"]) == [
        ("FOOD", 0, 1), ("FOOD", 1, 3), ("LOC", 3, 4)]
    assert tags_to_spans(["I-QTY", "I-QTY"]) == [("QTY", 0, 2)]
    assert tags_to_spans(["O", "O"]) == [] and tags_to_spans([]) == []


@pytest.mark.parametrize("text", [HINGLISH, DEVANAGARI, EMOJI])
def test_every_word_entity_spans_index_the_input(tokenizer, text):
    # With B everywhere each word with a subword is one entity, and text[start:end] is its text.
    (ents,) = Predictor(_Scripted(rest=1), tokenizer, device="cpu").predict([text])
    for e in ents:
        assert text[e.start:e.end] == e.text and e.label == "FOOD"
    words = [w for w in split_words(text) if w[0] not in ("\ufe0f", "\u200b")]
    assert [(e.text, e.start, e.end) for e in ents] == words


@pytest.mark.parametrize("text", [HINGLISH, DEVANAGARI, EMOJI, "  padded  text  "])
def test_multiword_entity_spans_first_to_last_word(tokenizer, text):
    # B then I everywhere gives one entity from the first word's start to the last word's end.
    (ents,) = Predictor(_Scripted(rest=2), tokenizer, device="cpu").predict([text])
    assert len(ents) == 1
    assert ents[0].text == text.strip() == text[ents[0].start:ents[0].end]
    assert 0 < ents[0].score <= 1


def test_words_past_max_length_get_no_entity(tokenizer):
    # With room for 4 subwords only the first 4 one-subword words are tagged.
    text = "a b c d e f g h"
    (ents,) = Predictor(_Scripted(rest=1), tokenizer, max_length=6, device="cpu").predict([text])
    assert [e.text for e in ents] == ["a", "b", "c", "d"]


def test_batches_keep_order(tokenizer):
    # Predicting in small batches returns one entity list per text, in order.
    texts = [HINGLISH, DEVANAGARI, "", EMOJI]
    out = Predictor(_Scripted(rest=1), tokenizer, device="cpu").predict(texts, batch_size=3)
    assert [len(ents) for ents in out] == [len(split_words(HINGLISH)), len(split_words(DEVANAGARI)), 0, 4]


def test_trained_model_dir_spans_are_exact(model_dir):
    # A saved model directory loads; whatever it predicts indexes the input exactly.
    predictor = Predictor.from_dir(model_dir, device="cpu")
    texts = [HINGLISH, DEVANAGARI, EMOJI, "inayat se 2 pizza aur 1 coke, extra cheese ke saath"]
    out = predictor.predict(texts)
    assert sum(len(ents) for ents in out) > 0
    for text, ents in zip(texts, out):
        assert all(isinstance(e, Entity) and text[e.start:e.end] == e.text for e in ents)


def test_from_dir_rejects_non_model_dir(tmp_path):
    # A directory without config.json is a ValueError that names it.
    with pytest.raises(ValueError, match="not a model directory"):
        Predictor.from_dir(tmp_path)


def test_cli_predict_text(model_dir):
    # `nerkit predict --model DIR TEXT` prints the sentence and exits 0.
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--device", "cpu",
                                              "tushar se 2 misal mangwao"])
    assert result.exit_code == 0, result.output
    assert "tushar se 2 misal mangwao" in result.stdout


def test_cli_predict_file_json(model_dir, tmp_path):
    # --file reads one sentence per line (blank lines skipped); --json prints one object per sentence.
    lines = ["tushar se 2 misal mangwao", DEVANAGARI, EMOJI]
    path = tmp_path / "in.txt"
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir), "--device", "cpu",
                                              "--file", str(path), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == lines
    for row in rows:
        for e in row["entities"]:
            assert row["text"][e["start"]:e["end"]] == e["text"]
            assert set(e) == {"text", "label", "start", "end", "score"}


def test_cli_predict_without_input_is_an_error(model_dir):
    # No sentences and no file is a ValueError saying how to give them.
    result = CliRunner().invoke(build_app(), ["predict", "--model", str(model_dir)])
    assert isinstance(result.exception, ValueError)
    assert "no sentences given" in str(result.exception)
