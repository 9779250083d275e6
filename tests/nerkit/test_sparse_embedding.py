"""Row-sparse AdamW for the word embedding: the same training as dense AdamW, less work."""

from __future__ import annotations

import pytest
import torch

import nerkit.train
from nerkit.config import TrainConfig
from nerkit.data import DataConfig
from nerkit.sparse_embedding import ACTIVE, RowSparseAdamW, clip_grad_norm, row_sparse_embedding
from nerkit.optim import embedding_update
from nerkit.train import train


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
    real_load, real_opt = nerkit.train.load_model, nerkit.train.build_optimizer
    monkeypatch.setattr(nerkit.train, "load_model", lambda *a: built.append(real_load(*a)) or built[-1])
    monkeypatch.setattr(nerkit.train, "build_optimizer", lambda *a: built.append(real_opt(*a)) or built[-1])
    return built


def test_sparse_and_dense_updates_train_the_same_model(cfg, models):
    # Two epochs with weight decay and clipping: the row-sparse optimizer ends within float
    # rounding of torch's dense AdamW, untouched embedding rows included (their decay is
    # owed, then paid before the weights are read), with the same losses.
    # On the CPU even where a GPU exists: the claim is about fp32 arithmetic, and on CUDA
    # nerkit multiplies in TF32. On an H100 the two runs' word embeddings ended past
    # rtol 1e-4; so did they here with TF32's rounding emulated in every linear layer
    # (5 of 976,704 elements, at most 4.6e-6 apart), while plain fp32 passes.
    cfg = cfg.with_overrides(device="cpu")
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
    # Losses, not F1: an argmax tie broken the other way by float rounding could move F1.
    for d, s in zip(dense.history, sparse.history):
        assert s["dev_loss"] == pytest.approx(d["dev_loss"], rel=1e-4)
        assert s["train_loss"] == pytest.approx(d["train_loss"], rel=1e-4)


def test_auto_is_sparse_on_cpu_for_few_used_rows_and_dense_where_rows_cannot_be_split(cfg, tiny_model_dir):
    # auto: sparse on CPU while the training split's distinct tokens are few (the sparse
    # update's cost grows with them); dense on GPUs, for many tokens, or when asked.
    from nerkit.model import load_model
    from nerkit.features import prepare_data

    model = load_model(str(tiny_model_dir), prepare_data(cfg.data, cfg.model).label_map)
    cpu, few, many = torch.device("cpu"), 600, 20_000
    assert embedding_update(cfg, model, cpu, few) == "sparse"
    assert embedding_update(cfg, model, cpu, many) == "dense"
    assert embedding_update(cfg, model, torch.device("cuda"), few) == "dense"  # not measured on GPUs
    assert embedding_update(cfg.with_overrides(embedding_update="sparse"), model, cpu, many) == "sparse"
    assert embedding_update(cfg.with_overrides(embedding_update="dense"), model, cpu, few) == "dense"
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
def test_a_checkpoint_resumes_under_the_other_update(cfg, checkpoint_at_first_eval, first, then):
    # A retried trial can land on another kind of node (auto: sparse on CPU, dense on
    # GPU): a checkpoint written under one update resumes under the other and finishes
    # close to a run that never switched.
    ckpt = checkpoint_at_first_eval(cfg.with_overrides(embedding_update=first))
    switched = train(cfg.with_overrides(embedding_update=then), resume_from=ckpt)
    straight = train(cfg.with_overrides(embedding_update=first))
    assert switched.status == straight.status == "completed"
    assert [m["eval_index"] for m in switched.history] == [0, 1]
    assert switched.history[-1]["train_loss"] == pytest.approx(straight.history[-1]["train_loss"], rel=1e-3)


def test_a_mask_carried_through_a_dense_resume_is_widened_to_the_rows_that_moved(cfg, tmp_path):
    # sparse -> dense -> sparse (a trial retried on a GPU node, then a CPU node): the dense
    # optimizer carries the first mask unchanged, so rows it first updated have moments but
    # no mark. Loaded back, those rows count as active again and keep their momentum.
    from nerkit.model import load_model
    from nerkit.features import prepare_data

    model = load_model(cfg.model, prepare_data(cfg.data, cfg.model).label_map)
    emb = model.get_input_embeddings()
    groups = [{"params": [emb.weight], "weight_decay": 0.01}]
    sparse = RowSparseAdamW(groups, embedding=emb, lr=1e-2, fused=True)
    emb(torch.tensor([1, 2])).sum().backward()
    sparse.step()
    carried = sparse.state_dict()
    carried["state"][0]["exp_avg"][5] = 0.5  # a row the dense optimizer then updated
    again = RowSparseAdamW([{"params": [emb.weight], "weight_decay": 0.01}], embedding=emb, lr=1e-2, fused=True)
    again.load_state_dict(carried)
    assert (again.state[emb.weight][ACTIVE].nonzero().flatten().tolist()) == [1, 2, 5]


def test_unsupported_adamw_options_and_closures_are_refused():
    # Options the embedding's own update does not implement would silently apply to every
    # other parameter only: refused, with what is supported.
    emb = torch.nn.Embedding(10, 4)
    with pytest.raises(ValueError, match=r"RowSparseAdamW got \['amsgrad'\]"):
        RowSparseAdamW([{"params": [emb.weight]}], embedding=emb, lr=1e-3, amsgrad=True)
    opt = RowSparseAdamW([{"params": [emb.weight]}], embedding=emb, lr=1e-3)
    with pytest.raises(ValueError, match="takes no closure"):
        opt.step(lambda: 0.0)


def test_a_gradient_from_an_eval_mode_forward_is_not_lost():
    # The forward hook activates rows only in training mode; a gradient that arrives
    # otherwise is activated by step() and updates the right rows.
    torch.manual_seed(0)
    sparse_emb, dense_emb = torch.nn.Embedding(10, 4), torch.nn.Embedding(10, 4)
    dense_emb.load_state_dict(sparse_emb.state_dict())
    sparse_opt = RowSparseAdamW([{"params": [sparse_emb.weight], "weight_decay": 0.1}], embedding=sparse_emb,
                                lr=1e-2, fused=True)
    dense_opt = torch.optim.AdamW([{"params": [dense_emb.weight], "weight_decay": 0.1}], lr=1e-2, fused=True)
    sparse_emb.eval()
    for ids in (torch.tensor([3, 7]), torch.tensor([7, 8, 8])):
        for emb, opt in ((sparse_emb, sparse_opt), (dense_emb, dense_opt)):
            opt.zero_grad(set_to_none=True)
            (emb(ids) ** 2).sum().backward()
            opt.step()
    sparse_opt.materialize()
    torch.testing.assert_close(sparse_emb.weight, dense_emb.weight)
