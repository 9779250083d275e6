"""The word-embedding update alone: dense fused AdamW against nerkit's row-sparse one.

Command::

    python benchmarks/bench_embedding_update.py --out benchmarks/results/embedding_update.json

A MiniLM-sized matrix (30,522 x 384) on 1 thread: the time of one backward through the
embedding, gradient clipping and the optimizer step, dense and with 700 to 20,000
active rows (rows that have been in a batch; the sparse update's cost grows with
them, not with the batch). The best of ``--repeats`` steps each. This is where
``nerkit.sparse_embedding.SPARSE_MAX_ROW_SHARE`` comes from. Prints one JSON document
and a markdown table.
"""

from __future__ import annotations

import argparse
import time

import _benchutil as bu


def _step_ms(active: int | None, rows: int, dim: int, batch_rows: int, repeats: int) -> float:
    """Milliseconds of backward + clip + step; ``active`` None = dense torch AdamW."""
    import torch

    from nerkit.sparse_embedding import RowSparseAdamW, clip_grad_norm

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(rows, dim)

        def get_input_embeddings(self):
            return self.emb

    model = Model()
    groups = [{"params": [model.emb.weight], "weight_decay": 0.01}]
    if active is None:
        opt = torch.optim.AdamW(groups, lr=1e-4, fused=True)
    else:
        opt = RowSparseAdamW(groups, embedding=model.emb, lr=1e-4, fused=True)
        model.emb(torch.arange(active))  # these rows have been in a batch
    ids = torch.randint(0, max(active or rows, batch_rows), (batch_rows,))
    times = []
    for _ in range(repeats):
        out = model.emb(ids).sum()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out.backward()
        clip_grad_norm([model.emb.weight], 1.0)
        opt.step()
        times.append(time.perf_counter() - start)
    return round(min(times) * 1e3, 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=30522)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--batch-rows", type=int, default=300, help="token positions per batch")
    p.add_argument("--active", default="700,2000,5000,10000,20000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", help="also write the JSON document here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    doc = bu.document("embedding_update", vars(args))
    rows = [{"update": "dense", "active_rows": args.rows,
             "ms": _step_ms(None, args.rows, args.dim, args.batch_rows, args.repeats)}]
    for k in (int(x) for x in args.active.split(",")):
        rows.append({"update": "sparse", "active_rows": k,
                     "ms": _step_ms(k, args.rows, args.dim, args.batch_rows, args.repeats)})
    doc["results"] = rows
    bu.emit(doc, [("Backward + clip + step, 1 thread", rows, ["update", "active_rows", "ms"])], args.out)


if __name__ == "__main__":
    main()
