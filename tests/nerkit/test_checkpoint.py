"""Tests for nerkit.checkpoint: loadable model directories and pickle-free training checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
import transformers

from nerkit.checkpoint import (CONFIG_FILE, METRICS_FILE, STATE_JSON, STATE_TENSORS, DamagedCheckpoint,
                               TrainingState, is_training_checkpoint, load_training_checkpoint)
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.features import prepare_data
from nerkit.train import train

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


@pytest.fixture(scope="module")
def trained(tiny_model_dir, small_data_dir, tmp_path_factory):
    """One 1-epoch run: its config, best-model directory and the checkpoint saved at its report."""
    out = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=1,
                      batch_size=16, learning_rate=1e-3, num_threads=1, weight_strategy="seed",
                      o_weight=0.5, entity_boost=3.0)  # weighted enough to predict entities
    train(cfg, output_dir=out / "model", report=lambda m, save: save(out / "training"))
    return cfg, out / "model", out / "training"


def _looks_pickled(path: Path) -> bool:
    head = path.read_bytes()[:4]
    # pickle protocol 2+ starts with 0x80; torch.save's default format is a zip archive.
    return head[:1] == b"\x80" or head == b"PK\x03\x04"


def test_model_dir_is_safetensors_only(trained):
    # The model directory holds model.safetensors and no pickled weights.
    _, model_dir, _ = trained
    files = {p.name for p in model_dir.iterdir()}
    assert {"model.safetensors", "config.json", CONFIG_FILE, METRICS_FILE, "tokenizer.json"} <= files
    assert not [p for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES or _looks_pickled(p)]


def test_config_json_has_label_maps(trained):
    # config.json carries id2label/label2id of the training data's label map.
    cfg, model_dir, _ = trained
    lm = prepare_data(cfg.data, cfg.model).label_map
    hf = json.loads((model_dir / "config.json").read_text())
    assert hf["id2label"] == {str(i): label for i, label in enumerate(lm.labels)}
    assert hf["label2id"] == lm.label2id


def test_nerkit_config_round_trips(trained):
    # nerkit_config.json rebuilds the exact TrainConfig the model was trained with, the
    # fingerprint of the data it trained on filled in.
    cfg, model_dir, _ = trained
    summary = json.loads((model_dir / METRICS_FILE).read_text())
    ran = cfg.with_overrides(data=dataclasses.replace(cfg.data, fingerprint=summary["fingerprint"]))
    assert TrainConfig.from_dict(json.loads((model_dir / CONFIG_FILE).read_text())) == ran
    assert summary["status"] == "completed" and "B-FOOD" in summary["class_weights"]


def test_model_dir_loads_in_transformers_pipeline(trained):
    # transformers' token-classification pipeline loads the directory and returns entity dicts.
    _, model_dir, _ = trained
    ner = transformers.pipeline("token-classification", model=str(model_dir), aggregation_strategy="simple",
                                device="cpu")
    text = "tushar se 2 misal mangwao aur inayat se pizza"
    out = ner(text)
    assert isinstance(out, list) and out, "the model predicts no entity to check"
    assert all({"entity_group", "score", "word", "start", "end"} <= set(e) for e in out)
    assert all(0 <= e["start"] < e["end"] <= len(text) for e in out)


def test_training_checkpoint_has_no_pickle(trained):
    # A training checkpoint is a model dir plus training_state.json + .safetensors, nothing pickled.
    _, _, ckpt = trained
    assert is_training_checkpoint(ckpt)
    files = {p.name for p in ckpt.iterdir()}
    assert {STATE_JSON, STATE_TENSORS, "model.safetensors", CONFIG_FILE} <= files
    assert not [p for p in ckpt.iterdir() if p.suffix in PICKLE_SUFFIXES or _looks_pickled(p)]
    state = json.loads((ckpt / STATE_JSON).read_text())
    assert state["progress"]["step"] == 10 and state["progress"]["epoch"] == 1
    assert len(state["progress"]["history"]) == 1


def test_load_restores_model_optimizer_and_progress(trained):
    # Loading a checkpoint into fresh objects restores weights, Adam moments and counters.
    cfg, _, ckpt = trained
    from nerkit.model import load_model
    from nerkit.optim import build_optimizer, build_scheduler

    lm = prepare_data(cfg.data, cfg.model).label_map
    model = load_model(cfg.model, lm)
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, 1, 10)
    state = load_training_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
    assert isinstance(state, TrainingState) and (state.step, state.epoch, state.batch_in_epoch) == (10, 1, 0)
    saved = transformers.AutoModelForTokenClassification.from_pretrained(str(ckpt))
    for name, value in saved.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert scheduler.last_epoch == 10
    moments = [s["exp_avg"] for s in optimizer.state_dict()["state"].values()]
    assert len(moments) == len(list(model.parameters())) and any(bool(m.abs().sum()) for m in moments)


def test_a_model_loaded_from_legacy_weight_names_resumes_whole(tiny_model_dir, tmp_path):
    # bert-base-style checkpoints name LayerNorm weights gamma/beta; transformers 5 wrote
    # checkpoints back under those names, and a resume (by the model's own names) found
    # them missing: before, it kept those layers as pretrained; then, it called it damaged.
    import shutil

    from safetensors.torch import load_file, save_file

    from nerkit.checkpoint import save_training_checkpoint
    from nerkit.labels import LabelMap
    from nerkit.model import load_model
    from nerkit.optim import build_optimizer, build_scheduler

    legacy = tmp_path / "legacy"
    shutil.copytree(tiny_model_dir, legacy)
    weights = load_file(str(legacy / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in weights.items()}
    assert renamed.keys() != weights.keys()
    save_file(renamed, str(legacy / "model.safetensors"), metadata={"format": "pt"})
    labels, cfg = LabelMap.from_types(["FOOD"]), TrainConfig(model=str(legacy))
    model = load_model(str(legacy), labels)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.25)  # as training moves them
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, 1, 10)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(legacy))
    ckpt = save_training_checkpoint(tmp_path / "ckpt", model=model, tokenizer=tokenizer, optimizer=optimizer,
                                    scheduler=scheduler, state=TrainingState(), config=cfg.to_dict())
    fresh = load_model(str(legacy), labels)
    load_training_checkpoint(ckpt, model=fresh, optimizer=build_optimizer(fresh, cfg, torch.device("cpu")),
                             scheduler=build_scheduler(optimizer, 1, 10))
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name


def test_a_checkpoint_keeps_the_batch_pool_its_run_started_with(trained, tmp_path):
    # Resumed mid-epoch under a newer default pool size, a run would get another batch
    # order for the rest of that epoch: records seen twice, others not at all.
    import shutil

    from nerkit.batching import POOL_BATCHES

    cfg, _, ckpt = trained
    from nerkit.model import load_model
    from nerkit.optim import build_optimizer, build_scheduler

    assert json.loads((ckpt / STATE_JSON).read_text())["progress"]["pool_batches"] == POOL_BATCHES
    older = tmp_path / "older"
    shutil.copytree(ckpt, older)
    meta = json.loads((older / STATE_JSON).read_text())
    del meta["progress"]["pool_batches"]  # as written before the pool was recorded
    (older / STATE_JSON).write_text(json.dumps(meta))
    lm = prepare_data(cfg.data, cfg.model).label_map
    model = load_model(cfg.model, lm)
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, 1, 10)
    assert load_training_checkpoint(older, model=model, optimizer=optimizer, scheduler=scheduler).pool_batches == 50


def test_loading_a_model_dir_as_checkpoint_fails(trained):
    # A plain model directory cannot be resumed from; the error says what is missing.
    cfg, model_dir, _ = trained
    with pytest.raises(ValueError, match="not a nerkit training checkpoint"):
        load_training_checkpoint(model_dir, model=None, optimizer=None, scheduler=None)


@pytest.mark.parametrize("damage", [STATE_TENSORS, STATE_JSON, "model.safetensors", "mismatch", "missing",
                                    "weight"])
def test_a_damaged_checkpoint_is_named_as_damaged(trained, tmp_path, damage):
    # safetensors' "invalid header length" named no file, and a search retried the trial
    # on the same file until it ran out of retries; the search's trainable trains such a
    # trial again from the start on DamagedCheckpoint (cut-off files, whole files that do
    # not fit together, lost state files).
    import shutil

    cfg, _, ckpt = trained
    from nerkit.model import load_model
    from nerkit.optim import build_optimizer, build_scheduler

    damaged = tmp_path / "checkpoint_000000"
    shutil.copytree(ckpt, damaged)
    if damage == "mismatch":  # whole, but its optimizer state not this optimizer's
        meta = json.loads((damaged / STATE_JSON).read_text())
        meta["optimizer"] = {"other": meta["optimizer"]}
        (damaged / STATE_JSON).write_text(json.dumps(meta))
    elif damage == "missing":
        (damaged / STATE_JSON).unlink()
    elif damage == "weight":  # whole, but a weight short: it resumed with that layer as initialised
        from safetensors.torch import load_file, save_file

        weights = load_file(str(damaged / "model.safetensors"))
        del weights["classifier.bias"]
        save_file(weights, str(damaged / "model.safetensors"), metadata={"format": "pt"})
    else:
        (damaged / damage).write_bytes((damaged / damage).read_bytes()[:40])
    lm = prepare_data(cfg.data, cfg.model).label_map
    model = load_model(cfg.model, lm)
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, 1, 10)
    needle = "is not a nerkit training checkpoint" if damage == "missing" else "is damaged and cannot be resumed from"
    with pytest.raises(DamagedCheckpoint, match=rf"{damaged}.* {needle}|{damaged} {needle}"):
        load_training_checkpoint(damaged, model=model, optimizer=optimizer, scheduler=scheduler)


def test_mostly_zero_moment_rows_are_written_sparse_and_read_back_bit_for_bit():
    # AdamW's moments of an embedding matrix are zero in every row the data never touches:
    # only the other rows are written, and reading restores every bit (a -0.0 row too).
    from nerkit.checkpoint import ROWS, VALUES, _flatten_optimizer, _unflatten_optimizer

    emb = torch.zeros(1000, 8)
    emb[[3, 500, 999]] = torch.randn(3, 8)
    emb[7, 2] = -0.0  # equal to 0.0, but not the same bits
    dense = torch.randn(4, 8)
    state = {"state": {0: {"exp_avg": emb, "step": torch.tensor(5.0)}, 1: {"exp_avg": dense}},
             "param_groups": [{"lr": 1e-3, "params": [0, 1]}]}
    tensors, meta = _flatten_optimizer(state)
    assert tensors["opt.0.exp_avg" + ROWS].tolist() == [3, 7, 500, 999]
    assert tensors["opt.0.exp_avg" + VALUES].shape == (4, 8) and "opt.0.exp_avg" not in tensors
    assert torch.equal(tensors["opt.1.exp_avg"], dense)  # no zero rows: written whole
    back = _unflatten_optimizer(tensors, json.loads(json.dumps(meta)))["state"]
    assert torch.equal(back[0]["exp_avg"].view(torch.int32), emb.view(torch.int32))
    assert torch.equal(back[1]["exp_avg"], dense) and torch.equal(back[0]["step"], torch.tensor(5.0))


def test_replacing_a_model_dir_leaves_none_of_the_old_models_files(trained, tmp_path):
    # `nerkit train -o DIR` over an earlier run's model directory "replaces" it: files the
    # new model does not write (another tokenizer's vocab, a training state that makes it
    # look resumable) used to stay beside the new model.
    import shutil

    from nerkit.checkpoint import is_model_dir_of_nerkit, replace_model_dir

    _, model_dir, _ = trained
    target = tmp_path / "out"
    shutil.copytree(model_dir, target)
    (target / "spm.model").write_text("another tokenizer")
    (target / STATE_JSON).write_text("{}")
    (target / "additional_chat_templates").mkdir()  # a tokenizer's save writes it (transformers 5)
    assert is_model_dir_of_nerkit(target)  # what `nerkit train -o` agrees to replace
    model = transformers.AutoModelForTokenClassification.from_pretrained(model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    replace_model_dir(target, model, tokenizer, {"run": 2}, {"best": None})
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in model_dir.iterdir())
    assert json.loads((target / CONFIG_FILE).read_text()) == {"run": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or old copy left beside it
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # as mkdir makes it, not mkdtemp's private 0o700


class _FakeSaver:
    """Writes one file as save_pretrained would: what replace_model_dir moves is files."""

    def __init__(self, name: str) -> None:
        self.name = name

    def save_pretrained(self, path, **_) -> None:
        (Path(path) / self.name).write_text("new")


def _old_model(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text("old")
    (path / STATE_JSON).write_text("{}")
    return path


def _replace(path) -> None:
    from nerkit.checkpoint import replace_model_dir

    replace_model_dir(path, _FakeSaver("config.json"), _FakeSaver("tokenizer.json"), {"run": 2})


@pytest.mark.parametrize("extra", ["notes.txt", "eval/", "model_v2.bin"])
def test_a_model_dir_with_the_users_own_files_beside_it_is_not_nerkits_to_replace(trained, tmp_path, extra):
    # `nerkit train -o` replaces an earlier model directory whole: a note, a folder or other
    # weights a user put beside the model were deleted with it, so such a directory is not one
    # nerkit wrote, and its entries the model save would not write are named.
    import shutil

    from nerkit.checkpoint import foreign_entries, is_model_dir_of_nerkit

    _, model_dir, _ = trained
    target = tmp_path / "out"
    shutil.copytree(model_dir, target)
    (target / ".DS_Store").write_bytes(b"\0")  # an OS's, not the user's: no reason to refuse
    assert is_model_dir_of_nerkit(target) and foreign_entries(target) == []
    if extra.endswith("/"):
        (target / extra).mkdir()
    else:
        (target / extra).write_text("mine")
    assert not is_model_dir_of_nerkit(target)
    assert foreign_entries(target) == [extra]


def test_replacing_the_working_directory_keeps_it(tmp_path, monkeypatch):
    # `-o .`: renaming "." fails (EBUSY) after the whole run, and the model was lost.
    monkeypatch.chdir(_old_model(tmp_path / "out"))
    _replace(".")
    assert sorted(p.name for p in Path.cwd().iterdir()) == ["config.json", CONFIG_FILE, "tokenizer.json"]
    assert Path.cwd() == tmp_path / "out"


def test_replacing_through_a_symlink_writes_where_it_points(tmp_path):
    # The link (to a larger disk, say) was replaced by a directory; the old model stayed at its target.
    real = _old_model(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    _replace(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (real / "config.json").read_text() == "new"
    assert not (real / STATE_JSON).exists()


def test_a_swap_that_fails_half_way_leaves_the_old_model(tmp_path, monkeypatch):
    # The old model was left in a hidden .old-* directory and the model directory was gone.
    target = _old_model(tmp_path / "out")
    real_replace, calls = os.replace, []

    def full_disk_on_the_new_models_second_file(src, dst):
        calls.append(src)
        if Path(src).parent.name.startswith(".saving-") and len(calls) == 4:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk_on_the_new_models_second_file)
    with pytest.raises(OSError, match="No space"):
        _replace(target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", STATE_JSON]
    assert (target / "config.json").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out"]
