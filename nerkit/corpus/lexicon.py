"""The entity lexicon: stores, dishes and localities, and their split into pools.

Each :class:`Entry` groups the spellings of one thing ("inayat", "inayat cafe").
Whole entries, never single spellings, are dealt to the train, dev and test pools,
so a held-out dish is unseen as a string and as a spelling variant. Quantities and
preferences are shared across splits (see ``phrases``): the held-out splits measure
whether context, not memorised names, identifies a store, a dish or a place.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from nerkit.corpus.names import DISHES, LOCALITIES, STORES, Entry

SPLITS = ("train", "dev", "test")

# The share of entries (per type, and per Devanagari/romanized stratum) that each
# held-out split gets; train keeps the rest. 15% keeps held-out pools big enough
# for variety while train still sees about 60 stores and 65 dishes.
HELDOUT_FRACTION = 0.15

# Names used by the sentences a trained model must get right ("tushar se 2 misal
# mangwao", "inayat cafe se pizza chahiye", "gangapur road pe delivery"): their
# entries always go to train.
TRAIN_PINNED = ("tushar", "inayat cafe", "misal", "pizza", "gangapur road")


LEXICON = {"STORE": STORES, "FOOD": DISHES, "LOC": LOCALITIES}


def split_lexicon(
    entries: Sequence[Entry], rng: random.Random
) -> dict[str, tuple[Entry, ...]]:
    """Deal ``entries`` into disjoint train/dev/test pools.

    Entries with and without Devanagari spellings are dealt separately, so every
    pool can fill Devanagari sentences; pinned entries (``TRAIN_PINNED``) go to train.

    Args:
        entries: One type's lexicon, e.g. ``DISHES``.
        rng: The source of the shuffle.

    Returns:
        ``{"train": ..., "dev": ..., "test": ...}``, each in lexicon order.
    """
    pools: dict[str, list[Entry]] = {split: [] for split in SPLITS}
    for has_deva in (True, False):
        stratum = [e for e in entries if bool(e.deva) == has_deva]
        free = [e for e in stratum if not set(e.latin) & set(TRAIN_PINNED)]
        rng.shuffle(free)
        n_held = round(len(stratum) * HELDOUT_FRACTION)
        pools["dev"] += free[:n_held]
        pools["test"] += free[n_held : 2 * n_held]
        pools["train"] += [e for e in stratum if e not in free[: 2 * n_held]]
    # Lexicon order, not shuffle order, so a pool reads like the lexicon.
    order = {entry: i for i, entry in enumerate(entries)}
    return {split: tuple(sorted(pool, key=order.__getitem__)) for split, pool in pools.items()}


def check_lexicon(lexicon: dict[str, Sequence[Entry]] = LEXICON) -> None:
    """Fail when one spelling (case-folded) belongs to two entries, of any type.

    Disjoint pools are only disjoint as strings when no spelling is shared.

    Raises:
        ValueError: naming the spelling and both entries.
    """
    owner: dict[str, tuple[str, Entry]] = {}
    for label, entries in lexicon.items():
        for entry in entries:
            for form in dict.fromkeys(entry.latin + entry.deva):
                key = form.casefold()
                if key in owner and owner[key] != (label, entry):
                    raise ValueError(
                        f"spelling {form!r} is in {label} {entry.latin[0]!r} and in "
                        f"{owner[key][0]} {owner[key][1].latin[0]!r}; a spelling may "
                        "belong to one lexicon entry only"
                    )
                owner[key] = (label, entry)
