"""The bundled Hinglish food-ordering NER corpus and its seeded generator.

About 1,050 utterances ("inayat se 2 pizza mangwao") in romanized Hindi, English
and Devanagari, tagged STORE, FOOD, LOC, QTY and PREF, split 80/10/10 into
train/dev/test with disjoint stores, dishes and localities per split. The shipped
JSONL files are ``generate(BUNDLED_SEED)`` written by :func:`write_corpus`.

Example:
    >>> from nerkit.corpus import bundled_data_dir
    >>> sorted(p.name for p in bundled_data_dir().glob("*.jsonl"))
    ['dev.jsonl', 'test.jsonl', 'train.jsonl']
"""

from __future__ import annotations

from pathlib import Path

from nerkit.corpus.build import BUNDLED_SEED, generate, write_corpus

__all__ = ["BUNDLED_SEED", "bundled_data_dir", "generate", "write_corpus"]


def bundled_data_dir() -> Path:
    """The directory holding the shipped ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl``."""
    # Package data sits next to this module (pyproject's package-data), in a
    # checkout, an editable install and an unpacked wheel alike.
    return Path(__file__).resolve().parent / "data"
