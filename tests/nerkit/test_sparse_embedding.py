"""Row-sparse AdamW for the word embedding: the same training as dense AdamW, less work."""

from __future__ import annotations

import pytest
import torch

import nerkit.train
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.sparse_embedding import ACTIVE, RowSparseAdamW, clip_grad_norm, row_sparse_embedding
from nerkit.train import embedding_update, train


@pytest.fixture()
def cfg(tiny_model_dir, small_data_dir) -> TrainConfig:
    # 160 train records / batch 16 = 10 steps per epoch; weight decay on, clipping on.
    return TrainConfig(model=str(tiny_model_dir), data=DataConfig(path=str(small_data_dir)), epochs=2,
                       batch_size=16, learning_rate=1e-3, num_threads=1, weight_strategy="seed",
                       o_weight=0.5, entity_boost=3.0, weight_decay=0.1, max_grad_norm=0.5, precision="fp32")


@pytest.fixture()
def models(monkeypatch) -> list:
    """Every model train() builds, in order, and the optimizer each run used."""
    built: list = []
    real_load, real_opt = nerkit.train.load_model, nerkit.train._optimizer
    monkeypatch.setattr(nerkit.train, "load_model", lambda *a: built.append(real_load(*a)) or built[-1])
    monkeypatch.setattr(nerkit.train, "_optimizer", lambda *a: built.append(real_opt(*a)) or built[-1])
    return built


def test_sparse_and_dense_updates_train_the_same_model(cfg, models):
    # Two epochs with weight decay and clipping: the row-sparse optimizer ends within float
    # rounding of torch's dense AdamW, untouched embedding rows included (their decay is
    # owed, then paid before the weights are read), and scores the same.
    dense = train(cfg.with_overrides(embedding_update="dense"))
    dense_model, dense_opt = models[0], models[1]
    sparse = train(cfg.with_overrides(embedding_update="sparse"))
    sparse_model, sparse_opt = models[2], models[3]
    assert type(dense_opt) is torch.optim.AdamW and isinstance(sparse_opt, RowSparseAdamW)

    emb = sparse_model.get_input_embeddings().weight
    active = sparse_opt.state[emb][ACTIVE] != 0
    assert 0 < int(active.sum()) < len(active)  # the test sees both kinds of row
    start = nerkit.train.load_model(cfg.model, nerkit.features.prepare_data(cfg.data, cfg.model).label_map)
    untouched = ~active
    assert not torch.equal(emb[untouched], start.get_input_embeddings().weight[untouched])  # decayed
    for (name, d), (_, s) in zip(dense_model.state_dict().items(), sparse_model.state_dict().items()):
        torch.testing.assert_close(s, d, rtol=1e-4, atol=1e-6, msg=name)
    for d, s in zip(dense.history, sparse.history):
        assert s["dev_f1"] == pytest.approx(d["dev_f1"], abs=1e-3)
        assert s["train_loss"] == pytest.approx(d["train_loss"], rel=1e-4)


def test_auto_is_sparse_on_cpu_and_dense_where_rows_cannot_be_split(cfg, tiny_model_dir):
    from nerkit.model import load_model
    from nerkit.features import prepare_data

    model = load_model(str(tiny_model_dir), prepare_data(cfg.data, cfg.model).label_map)
    assert embedding_update(cfg, model, torch.device("cpu")) == "sparse"
    assert embedding_update(cfg, model, torch.device("cuda")) == "dense"  # not measured on GPUs
    assert embedding_update(cfg.with_overrides(embedding_update="dense"), model, torch.device("cpu")) == "dense"
    # Frozen, or shared with another module (tied weights): dense.
    model.get_input_embeddings().weight.requires_grad_(False)
    assert row_sparse_embedding(model) is None
    model.get_input_embeddings().weight.requires_grad_(True)
    model.tied = torch.nn.Linear(2, 2)
    model.tied.weight = model.get_input_embeddings().weight
    assert row_sparse_embedding(model) is None
    with pytest.raises(ValueError, match=r"embedding_update is 'rows', but must be one of"):
        cfg.with_overrides(embedding_update="rows")


def test_clipping_counts_sparse_rows_like_the_dense_matrix():
    # The same gradients, once sparse and once dense: the same total norm and the same clipped values.
    torch.manual_seed(0)
    sparse_emb, dense_emb = torch.nn.Embedding(10, 4, sparse=True), torch.nn.Embedding(10, 4)
    dense_emb.weight.data.copy_(sparse_emb.weight.data)
    lin = [torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)]
    lin[1].load_state_dict(lin[0].state_dict())
    ids = torch.tensor([1, 3, 3, 7])
    for emb, head in ((sparse_emb, lin[0]), (dense_emb, lin[1])):
        (head(emb(ids)) ** 2).sum().mul(50).backward()
    total_s = clip_grad_norm([sparse_emb.weight, *lin[0].parameters()], 1.0)
    total_d = torch.nn.utils.clip_grad_norm_([dense_emb.weight, *lin[1].parameters()], 1.0)
    torch.testing.assert_close(total_s, total_d)
    assert total_d > 1.0  # clipping happened
    torch.testing.assert_close(sparse_emb.weight.grad.to_dense(), dense_emb.weight.grad)
    torch.testing.assert_close(lin[0].weight.grad, lin[1].weight.grad)


@pytest.mark.parametrize("first, then", [("sparse", "dense"), ("dense", "sparse")])
def test_a_checkpoint_resumes_under_the_other_update(cfg, tmp_path, first, then):
    # A retried trial can land on another kind of node (auto: sparse on CPU, dense on
    # GPU): a checkpoint written under one update resumes under the other and finishes
    # close to a run that never switched.
    class Stop(Exception):
        pass

    def save_then_stop(metrics, save):
        save(tmp_path / "ckpt")
        raise Stop

    with pytest.raises(Stop):
        train(cfg.with_overrides(embedding_update=first), report=save_then_stop)
    switched = train(cfg.with_overrides(embedding_update=then), resume_from=tmp_path / "ckpt")
    straight = train(cfg.with_overrides(embedding_update=first))
    assert switched.status == straight.status == "completed"
    assert [m["eval_index"] for m in switched.history] == [0, 1]
    assert switched.history[-1]["train_loss"] == pytest.approx(straight.history[-1]["train_loss"], rel=1e-3)
