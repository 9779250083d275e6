"""AdamW that updates the word-embedding matrix only where it changes.

Why: MiniLM's word-embedding matrix is 11.7M of its 22.7M parameters, yet a batch
touches a few hundred of its 30,522 rows (the bundled corpus's training split uses
657 word pieces in all). Dense, every step builds a 30,522-row gradient, clips it and
runs AdamW over every row: on the 2-core CPU machine that was about a fifth of a bf16
step (``--freeze-embeddings``, which drops that work, ran 1.24x faster: benchmarks/
RESULTS.md §1). Freezing changes the model; this does not.

The maths is AdamW's, row by row, and splits the rows in two:

* **active** rows: every row that has appeared in a training batch. Their moments are
  (or were) non-zero, so each step does AdamW's full update on them, gradient or not
  (a row with no gradient this step still moves by its decaying moments).
* **untouched** rows: never in a batch, moments zero. AdamW's update for such a row is
  the weight decay alone, ``p *= 1 - lr * weight_decay``, the same factor for all of
  them. That product is kept as one number (``pending``) and applied when a row is
  first read: when it enters a training batch (it then becomes active), at evaluation
  and before the weights are saved (``materialize``).

Its cost grows with the number of active rows, not the batch. On 1 CPU thread, for
MiniLM's matrix (backward, clipping and step; benchmarks/bench_embedding_update.py), the
dense update took 29 ms. The sparse one took 1.6 ms with 700 active rows, 21 ms with
10,000 and 40 ms with 20,000. The active rows are exactly the distinct tokens of the
training split, known before training, so ``embedding_update: auto`` picks sparse only
where they are at most ``SPARSE_MAX_ROW_SHARE`` of the rows (nerkit.optim).

The embedding's gradient is made sparse (``nn.Embedding.sparse``); gradient clipping
counts its rows with everyone else's (``clip_grad_norm``). The results equal dense
AdamW's up to float rounding (the decay of untouched rows is one product instead of a
chain of multiplications; tests/nerkit/test_sparse_embedding.py). The optimizer's state
holds the active rows, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

#: Optimizer state key of the active-row mask (1.0 = active), beside AdamW's own.
ACTIVE = "active_rows"
#: ``auto`` updates sparsely only when the training split's distinct tokens are at most
#: this share of the embedding's rows. For MiniLM that is 3,052 rows, where the sparse
#: update costs about a sixth of the dense one; break-even lies between 10,000 and
#: 20,000 rows (module doc).
SPARSE_MAX_ROW_SHARE = 0.1
#: AdamW options this class implements for the embedding (the others would silently
#: apply to every parameter but it).
_SUPPORTED = {"lr", "betas", "eps", "weight_decay", "fused"}


def row_sparse_embedding(model) -> torch.nn.Embedding | None:
    """The model's word-embedding module if its rows can be updated sparsely, else None.

    Not when the matrix is frozen, shared with another module (tied weights would
    get gradients from elsewhere), renormalised in the forward pass (``max_norm``
    writes to it), or not a plain ``nn.Embedding``.
    """
    emb = model.get_input_embeddings()
    if type(emb) is not torch.nn.Embedding or not emb.weight.requires_grad or emb.max_norm is not None:
        return None
    owners = sum(1 for m in model.modules() for p in m.parameters(recurse=False) if p is emb.weight)
    return emb if owners == 1 else None


class RowSparseAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` (fused where torch allows) plus a row-sparse word embedding."""

    def __init__(self, groups: list[dict], *, embedding: torch.nn.Embedding, **kwargs) -> None:
        unsupported = sorted(set(kwargs) - _SUPPORTED)
        if unsupported:
            raise ValueError(f"RowSparseAdamW got {unsupported}; it supports {sorted(_SUPPORTED)} "
                             "(use embedding_update: dense for the others)")
        super().__init__(groups, **kwargs)
        self.weight = embedding.weight
        embedding.sparse = True  # backward gives the rows a batch used, not 30k zeros
        self.pending = 1.0       # decay owed by every untouched row since the last materialize
        self._hook = embedding.register_forward_pre_hook(self._before_forward)

    def _state(self) -> dict:
        state = self.state[self.weight]
        if not state:
            w = self.weight
            state["step"] = torch.tensor(0.0, dtype=torch.float32, device=w.device)  # as fused AdamW keeps it
            state["exp_avg"] = torch.zeros_like(w, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(w, memory_format=torch.preserve_format)
        if ACTIVE not in state:
            # Fresh, or restored from a checkpoint of the dense optimizer: a row with
            # non-zero moments has been in a batch.
            state[ACTIVE] = _moved_rows(state).float()
        return state

    def _group(self) -> dict:
        return next(g for g in self.param_groups if any(p is self.weight for p in g["params"]))

    @torch.no_grad()
    def materialize(self) -> None:
        """Apply the decay owed to untouched rows, so the weight matrix is what dense AdamW holds."""
        if self.pending != 1.0:
            # One in-place pass (a masked read-modify-write copies the matrix twice).
            factor = torch.where(self._state()[ACTIVE] != 0, 1.0, self.pending).to(self.weight.dtype)
            self.weight.mul_(factor[:, None])
            self.pending = 1.0

    @torch.no_grad()
    def _before_forward(self, module, args) -> None:
        if not module.training:
            self.materialize()  # evaluation may read any row
            return
        self._activate(args[0].unique())

    @torch.no_grad()
    def _activate(self, rows: torch.Tensor) -> None:
        """Pay ``rows`` the decay they are owed and update them exactly from now on."""
        active = self._state()[ACTIVE]
        new = rows[active[rows] == 0]
        if len(new):
            self.weight[new] *= self.pending
            active[new] = 1.0

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self.pending = 1.0  # checkpoints are written materialized (nerkit.checkpoint)
        state = self.state.get(self.weight)
        if state and ACTIVE in state:
            # A dense AdamW that resumed an earlier checkpoint of this class carries its
            # old mask along unchanged: rows it updated since have moments but no mark.
            state[ACTIVE] = torch.maximum(state[ACTIVE], _moved_rows(state).to(state[ACTIVE].dtype))

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("RowSparseAdamW.step takes no closure (its backward would give the fused "
                             "AdamW a sparse gradient); call backward first, then step()")
        grad = self.weight.grad
        self.weight.grad = None  # the fused kernel neither takes sparse gradients nor needs this one
        try:
            loss = super().step(closure)
        finally:
            self.weight.grad = grad
        self._embedding_step(grad)
        return loss

    def _embedding_step(self, grad: torch.Tensor | None) -> None:
        state, group = self._state(), self._group()
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        state["step"] += 1
        step = float(state["step"])
        if grad is not None:
            grad = grad.coalesce()
            # The forward hook activates a training batch's rows; a gradient from a forward
            # it did not see (the module in eval mode, say) is activated here instead.
            self._activate(grad.indices()[0])
        rows = state[ACTIVE].nonzero().flatten()
        if len(rows):
            g = torch.zeros((len(rows), self.weight.shape[1]), dtype=self.weight.dtype, device=self.weight.device)
            if grad is not None:
                # Every row with a gradient is active now: find its place among them.
                g.index_add_(0, torch.searchsorted(rows, grad.indices()[0]), grad.values().to(g.dtype))
            p, m, v = self.weight[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]
            # torch.optim.AdamW, single-tensor form: decoupled decay, moments, bias-corrected step.
            p.mul_(1 - lr * wd)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step_size = lr / (1 - beta1**step)
            denom = (v.sqrt() / math.sqrt(1 - beta2**step)).add_(eps)
            p.addcdiv_(m, denom, value=-step_size)
            self.weight[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows] = p, m, v
        self.pending *= 1 - lr * wd


def _moved_rows(state: dict) -> torch.Tensor:
    """Rows with non-zero AdamW moments: rows some batch has used."""
    return ((state["exp_avg"] != 0) | (state["exp_avg_sq"] != 0)).any(dim=1)


def clip_grad_norm(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` that also takes sparse gradients (``nn.Embedding(sparse=True)``).

    The total norm counts a sparse gradient's rows as the dense zeros-elsewhere matrix
    would; every gradient is scaled by the same factor, as torch does.
    """
    dense, sparse = [], []
    for p in parameters:
        if p.grad is not None:
            if p.grad.is_sparse:
                p.grad = p.grad.coalesce()  # duplicate rows summed, as dense accumulation does
                sparse.append(p)
            else:
                dense.append(p)
    total = torch.nn.utils.get_total_norm([p.grad for p in dense] + [p.grad.values() for p in sparse])
    torch.nn.utils.clip_grads_with_norm_(dense, max_norm, total)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in sparse:
        p.grad.mul_(coef)
    return total
