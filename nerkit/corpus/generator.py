"""Rebuild the bundled corpus files: ``python -m nerkit.corpus.generator --out DIR``.

The shipped ``nerkit/corpus/data/*.jsonl`` are this command's output with the
default seed; rebuilding gives the same bytes (``tests/nerkit/test_corpus.py``
checks it). The generation itself lives in :mod:`nerkit.corpus.build`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from nerkit.corpus.build import BUNDLED_SEED, generate, write_corpus

__all__ = ["BUNDLED_SEED", "generate", "main", "write_corpus"]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``--out DIR [--seed N]`` and write the three split files."""
    parser = argparse.ArgumentParser(
        prog="python -m nerkit.corpus.generator",
        description="Write train.jsonl, dev.jsonl and test.jsonl of the bundled corpus.",
    )
    parser.add_argument("--out", required=True, help="directory to write the files into")
    parser.add_argument(
        "--seed", type=int, default=BUNDLED_SEED,
        help=f"generator seed (default {BUNDLED_SEED}, the seed of the shipped files)",
    )
    args = parser.parse_args(argv)
    for path in write_corpus(args.out, seed=args.seed):
        # A developer command, not library code: report what it wrote.
        print(path)


if __name__ == "__main__":
    main()
