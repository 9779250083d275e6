"""Tests for nerkit.model: how many subwords a model takes (subword_limit, check_max_length),
and loading a model for a label set."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from nerkit.model import check_max_length, subword_limit

UNSET = NS(model_max_length=int(1e30))  # a tokenizer that states no limit (transformers' sentinel)


@pytest.mark.parametrize("config, limit", [
    (NS(model_type="bert", max_position_embeddings=512, pad_token_id=0), 512),
    # Position ids start past the padding id: 514 positions take 512 subwords.
    (NS(model_type="roberta", max_position_embeddings=514, pad_token_id=1), 512),
    (NS(model_type="xlm-roberta", max_position_embeddings=514, pad_token_id=1), 512),
    (NS(model_type="camembert", max_position_embeddings=514, pad_token_id=1), 512),
    (NS(model_type="mpnet", max_position_embeddings=514, pad_token_id=1), 512),
    # DeBERTa-v2/v3 add no absolute positions: max_position_embeddings is no input limit.
    (NS(model_type="deberta-v2", max_position_embeddings=512, position_biased_input=False), None),
    (None, None),
])
def test_subword_limit_by_model_type(config, limit):
    assert subword_limit(UNSET, config) == limit


def test_the_tokenizer_and_the_positions_both_bound_it():
    tok = NS(model_max_length=256)
    assert subword_limit(tok, NS(model_type="bert", max_position_embeddings=512)) == 256
    assert subword_limit(NS(model_max_length=512), NS(model_type="bert", max_position_embeddings=128)) == 128
    check_max_length(128, tok, NS(model_type="bert", max_position_embeddings=128))
    with pytest.raises(ValueError, match=r"max_length is 129, but this model takes at most 128 subwords; give "
                                         r"--max-length 128 or less"):
        check_max_length(129, tok, NS(model_type="bert", max_position_embeddings=128))


def test_damaged_model_files_are_one_error_naming_the_model(tiny_model_dir, tmp_path):
    # A cut model.safetensors raised safetensors' own error type and a cut tokenizer.json a
    # JSON error: `nerkit train` printed a traceback for the first.
    import shutil

    from nerkit.alignment import load_tokenizer
    from nerkit.labels import LabelMap
    from nerkit.model import load_model

    damaged = tmp_path / "model"
    shutil.copytree(tiny_model_dir, damaged)
    (damaged / "model.safetensors").write_bytes((damaged / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(ValueError, match=rf"could not load the model '{damaged}' \(Error while deserializing"):
        load_model(str(damaged), LabelMap.from_types(["FOOD"]))
    (damaged / "tokenizer.json").write_bytes((damaged / "tokenizer.json").read_bytes()[:2000])
    with pytest.raises(ValueError, match=rf"could not load the model '{damaged}' \(Expecting"):
        load_tokenizer(damaged)


def test_a_saved_head_for_other_labels_is_replaced_even_at_the_same_size(tiny_model_dir, tmp_path):
    # transformers keeps a saved head whose shape fits: a model fine-tuned for FOOD, loaded
    # for LOC, scored B-LOC with B-FOOD's row. Its encoder is kept, its head made anew;
    # the same labels load whole (a nerkit checkpoint, resumed or fine-tuned further).
    import torch

    from nerkit.labels import LabelMap
    from nerkit.model import load_model

    food, loc = LabelMap.from_types(["FOOD"]), LabelMap.from_types(["LOC"])
    saved = load_model(str(tiny_model_dir), food)
    with torch.no_grad():
        saved.classifier.weight.fill_(0.5)
    saved.save_pretrained(tmp_path / "food")
    reloaded = load_model(str(tmp_path / "food"), food)
    assert torch.equal(reloaded.classifier.weight, saved.classifier.weight)
    other = load_model(str(tmp_path / "food"), loc)
    assert other.config.id2label == loc.id2label
    assert not torch.equal(other.classifier.weight, saved.classifier.weight)
    assert 0.005 < other.classifier.weight.std().item() < 0.05 and not other.classifier.bias.any()
    for (name, kept), (_, was) in zip(other.base_model.named_parameters(), saved.base_model.named_parameters()):
        assert torch.equal(kept, was), name


def test_a_saved_head_for_the_same_labels_in_another_order_keeps_its_rows(tiny_model_dir, tmp_path):
    # A hub model's labels in its own order (O, I-FOOD, B-FOOD) against nerkit's sorted map:
    # each label keeps its trained row, reordered, instead of a fresh head.
    import torch

    from nerkit.labels import LabelMap
    from nerkit.model import load_model

    theirs, ours = LabelMap(("O", "I-FOOD", "B-FOOD")), LabelMap.from_types(["FOOD"])
    saved = load_model(str(tiny_model_dir), theirs)
    with torch.no_grad():
        for row, value in enumerate((0.1, 0.2, 0.3)):
            saved.classifier.weight[row].fill_(value)
            saved.classifier.bias[row] = value
    saved.save_pretrained(tmp_path / "theirs")
    loaded = load_model(str(tmp_path / "theirs"), ours)
    by_label = {loaded.config.id2label[i]: round(loaded.classifier.bias[i].item(), 4) for i in range(3)}
    assert by_label == {"O": 0.1, "I-FOOD": 0.2, "B-FOOD": 0.3}
    assert torch.allclose(loaded.classifier.weight[ours.label2id["B-FOOD"]], torch.full((32,), 0.3))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_checkpoint_trains_and_predicts_in_float32(tiny_model_dir, tmp_path, dtype):
    # transformers loads a checkpoint in the dtype its config.json names: a float16 hub
    # model trained with float16 weights (no fp32 master copy) and bf16 autocast on the
    # CPU failed on it ("expect parameter to have scalar type of Float").
    import torch
    from transformers import AutoTokenizer

    from nerkit.labels import LabelMap
    from nerkit.model import load_model
    from nerkit.predict import Predictor

    load_model(str(tiny_model_dir), LabelMap.from_types(["FOOD"])).to(getattr(torch, dtype)).save_pretrained(
        tmp_path / "half")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "half")
    model = load_model(str(tmp_path / "half"), LabelMap.from_types(["FOOD"]))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    predictor = Predictor.from_dir(tmp_path / "half", device="cpu")
    assert {p.dtype for p in predictor.model.parameters()} == {torch.float32}


def test_the_model_fingerprint_follows_the_files_not_the_path(tiny_model_dir, tmp_path):
    # A copy elsewhere is the same model; new weights at the same path are not.
    import shutil

    from nerkit.model import model_fingerprint

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert model_fingerprint(str(copy)) == model_fingerprint(str(tiny_model_dir)) is not None
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert model_fingerprint(str(copy)) != model_fingerprint(str(tiny_model_dir))
    assert model_fingerprint("acme/not-cached") is None  # nothing local to read: not checked


def test_a_hub_models_fingerprint_is_its_revision_not_the_files_fetched_so_far(tmp_path):
    # The driver caches the config and tokenizer; trials fetch the weights later. Hashing the
    # files present made every resume of such a search refuse "another model".
    import os
    import subprocess
    import sys

    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny" / "refs" / "main").write_text("a" * 40)
    code = "from nerkit.model import model_fingerprint; print(model_fingerprint('acme/tiny'))"

    def fingerprint():
        env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub")}
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              check=True, timeout=120).stdout.strip()

    before = fingerprint()
    (snapshot / "model.safetensors").write_bytes(b"weights")  # a trial fetched them
    assert before == fingerprint() == f"hub:acme/tiny@{'a' * 40}"
