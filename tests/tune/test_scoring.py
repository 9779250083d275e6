"""tune.scoring: a trial's checkpoint fetched for promotion (scoring itself: tests/tune/test_promote.py)."""

from __future__ import annotations

import pytest


def test_checkpoint_download_from_object_storage_skips_the_optimizer_state_and_names_a_gone_one(tmp_path):
    # The object-storage path (here file://, the same pyarrow code as s3://) copied the
    # optimizer state too, and a removed checkpoint gave pyarrow's raw "Path does not exist".
    from tune.scoring import local_checkpoint

    ckpt = tmp_path / "runs" / "s" / "trial_t" / "checkpoint_000001"
    (ckpt / "sub").mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "training_state.safetensors", "training_state.json",
                 "sub/extra.txt"):
        (ckpt / name).write_text(name)
    row = {"trial_id": "t", "checkpoint": str(ckpt)}
    got = local_checkpoint(row, f"file://{tmp_path / 'runs' / 's'}", tmp_path / "work")
    assert sorted(str(p.relative_to(got)) for p in got.rglob("*") if p.is_file()) == [
        "config.json", "model.safetensors", "sub/extra.txt"]
    import shutil

    shutil.rmtree(ckpt)
    with pytest.raises(ValueError, match=r"trial t's checkpoint .* is gone"):
        local_checkpoint(row, f"file://{tmp_path / 'runs' / 's'}", tmp_path / "work2")


def test_a_checkpoint_is_scored_with_its_own_tokenizer_when_the_base_model_is_gone(tiny_model_dir, small_data_dir,
                                                                                  tmp_path):
    # The base model of a search need not be where promote runs: the checkpoint holds its
    # own tokenizer, which is what is scored and published.
    import shutil

    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from nerkit.config import TrainConfig
    from nerkit.data import DataConfig, load_dataset
    from tune.scoring import evaluate_test

    labels = list(load_dataset(DataConfig(path=str(small_data_dir))).label_map.labels)
    config = BertConfig.from_pretrained(tiny_model_dir, num_labels=len(labels),
                                        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    torch.manual_seed(0)
    ckpt = tmp_path / "checkpoint"
    BertForTokenClassification(config).save_pretrained(ckpt)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(ckpt)
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    cfg = TrainConfig(model=str(base), data=DataConfig(path=str(small_data_dir)), device="cpu")
    with_base, _ = evaluate_test(ckpt, cfg, "trial t's checkpoint")
    shutil.rmtree(base)
    metrics, prepared = evaluate_test(ckpt, cfg, "trial t's checkpoint")
    # The same scores as with the base model there, on the same data.
    assert metrics == with_base and list(prepared.label_map.labels) == labels
    assert metrics["gold_entity_ratio"] > 0 and 0 < metrics["entity_pred_ratio"] < 1  # a random model tags some


def test_data_without_a_test_split_is_refused_with_how_to_give_one(tiny_model_dir, small_data_dir, tmp_path):
    # Promotion scores on test: without a split it refuses, saying how to add one (in the
    # words the doctor and the search's warning use), not only that it is missing.
    import shutil

    from nerkit.config import TrainConfig
    from nerkit.data import TEST_SPLIT_FIX, DataConfig
    from tune.scoring import PromotionRefused, evaluate_test

    data = tmp_path / "data"
    shutil.copytree(small_data_dir, data)
    for f in data.glob("test.*"):
        f.unlink()
    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(data)), device="cpu")
    with pytest.raises(PromotionRefused, match="the data has no test split") as info:
        evaluate_test(tiny_model_dir, cfg, "trial t's checkpoint")
    assert TEST_SPLIT_FIX in str(info.value)
