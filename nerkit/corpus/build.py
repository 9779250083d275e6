"""Build the whole corpus: deal the lexicon, plan each split, draw unique records.

Steps, all driven by one ``random.Random(seed)``:

1. deal stores, dishes and localities into disjoint train/dev/test pools;
2. plan each split: how many records with and without entities, and in which
   language (romanized Hindi, English, Devanagari);
3. draw records to the plan, rejecting any text already drawn in any split (up to
   case), so no split repeats a text and no held-out text is a train text;
4. shuffle each split, so record order says nothing about its kind.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from nerkit.corpus.lexicon import LEXICON, SPLITS, check_lexicon, split_lexicon
from nerkit.corpus.sampler import Sampler, to_record

BUNDLED_SEED = 13

# About 1,050 records, 80/10/10.
SPLIT_SIZES = {"train": 840, "dev": 105, "test": 105}
NEGATIVE_SHARE = 0.31  # records without entities
DEVANAGARI_SHARE = 0.065  # records in Devanagari script
DEVANAGARI_NEGATIVE_SHARE = 0.35  # of the Devanagari records
ENGLISH_SHARE = 0.18  # of the romanized records

# Draws per record before giving up on finding an unseen text.
_MAX_DRAWS = 500

# The sentences a model trained on train must get right. They open train verbatim,
# and their names are pinned to the train lexicon (lexicon.TRAIN_PINNED).
ANCHORS = (
    (("tushar", "STORE"), ("se", None), ("2", "QTY"), ("misal", "FOOD"), ("mangwao", None)),
    (("inayat cafe", "STORE"), ("se", None), ("pizza", "FOOD"), ("chahiye", None)),
    (("gangapur road", "LOC"), ("pe", None), ("delivery", None)),
    (("cart", None), ("dikhao", None)),
)


def generate(seed: int = BUNDLED_SEED) -> dict[str, list[dict]]:
    """Generate the corpus.

    Args:
        seed: Seed of the one random generator; the shipped files use ``BUNDLED_SEED``.

    Returns:
        ``{"train": [...], "dev": [...], "test": [...]}``; each record is
        ``{"text": str, "entities": [{"start", "end", "label"}, ...]}`` with
        character spans (``end`` exclusive), sorted and non-overlapping.

    Example:
        >>> corpus = generate()
        >>> [len(corpus[split]) for split in ("train", "dev", "test")]
        [840, 105, 105]
    """
    check_lexicon()
    rng = random.Random(seed)
    dealt = {label: split_lexicon(entries, rng) for label, entries in LEXICON.items()}
    seen: set[str] = set()
    corpus = {}
    for split in SPLITS:
        pools = {label: dealt[label][split] for label in LEXICON}
        anchors = ANCHORS if split == "train" else ()
        records = [to_record(segments) for segments in anchors]
        seen.update(record["text"].casefold() for record in records)
        sampler = Sampler(rng, pools)
        for kind, lang in _plan(SPLIT_SIZES[split], anchors, rng):
            records.append(_draw_unseen(sampler, kind, lang, seen, split))
        rng.shuffle(records)
        corpus[split] = records
    return corpus


def write_corpus(out_dir: str | Path, seed: int = BUNDLED_SEED) -> list[Path]:
    """Write ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` into ``out_dir``.

    Lines are ``json.dumps(record, ensure_ascii=False)`` with ``"\\n"`` endings in
    UTF-8, so the same seed gives the same bytes.

    Returns:
        The three paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, records in generate(seed).items():
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n")
        paths.append(path)
    return paths


def _plan(size: int, anchors: tuple, rng: random.Random) -> list[tuple[str, str]]:
    """``(kind, lang)`` for each record still to draw, ``kind`` "pos" or "neg"."""
    n_neg = round(size * NEGATIVE_SHARE)
    n_deva = round(size * DEVANAGARI_SHARE)
    n_deva_neg = round(n_deva * DEVANAGARI_NEGATIVE_SHARE)
    # Anchors count towards the split's totals (all are romanized Hindi).
    n_anchor_neg = sum(all(label is None for _, label in a) for a in anchors)
    counts = {
        ("neg", "deva"): n_deva_neg,
        ("pos", "deva"): n_deva - n_deva_neg,
        ("neg", "latin"): n_neg - n_deva_neg - n_anchor_neg,
        ("pos", "latin"): size - n_neg - (n_deva - n_deva_neg) - (len(anchors) - n_anchor_neg),
    }
    plan = []
    for (kind, script), count in counts.items():
        if script == "deva":
            plan += [(kind, "deva")] * count
            continue
        n_en = round(count * ENGLISH_SHARE)
        plan += [(kind, "en")] * n_en + [(kind, "hi")] * (count - n_en)
    return plan


def _draw_unseen(sampler: Sampler, kind: str, lang: str, seen: set[str], split: str) -> dict:
    draw = sampler.positive if kind == "pos" else sampler.negative
    for _ in range(_MAX_DRAWS):
        record = to_record(draw(lang))
        # Case-folded, so "Cart dikhao" in test does not repeat "cart dikhao" in train.
        key = record["text"].casefold()
        if key not in seen:
            seen.add(key)
            return record
    raise RuntimeError(
        f"no unseen {lang} {kind} text for split {split!r} after {_MAX_DRAWS} draws; "
        "add negatives or templates for that language to nerkit/corpus/phrases.py"
    )
