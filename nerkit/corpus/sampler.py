"""Turn templates, lexicon pools and phrases into single utterances.

An utterance is built as segments ``(text, label)`` (label ``None`` for words
outside entities) and only then joined, so entity offsets are exact by
construction. Everything random comes from the one ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from nerkit.corpus.names import Entry
from nerkit.corpus.phrases import (
    HEAD_FILLERS,
    NEGATIVES,
    ORDER_VERBS,
    PREFERENCES,
    QUANTITIES,
    SPELLINGS,
    TAIL_FILLERS,
)
from nerkit.corpus.templates import TEMPLATES, parse, slot_of

Segment = tuple[str, str | None]

# How often the optional touches appear; tuned so that about 32% of words are
# entity words and QTY/PREF stay a few percent of them, as in the team's data.
P_OPTIONAL_QTY = 0.2
P_HEAD_FILLER = 0.25
P_TAIL_FILLER = 0.25
P_COMMA_AFTER_HEAD = 0.35
P_COMMA_BEFORE_TAIL = 0.2
P_SPELLING_VARIANT = 0.15
END_PUNCTUATION = (("", 78), ("?", 6), (".", 5), ("!", 5), ("!!", 3), ("...", 3))
CASINGS = (("lower", 68), ("sentence", 17), ("title_entities", 11), ("upper", 4))

# Marks that attach to the word before them instead of following a space.
_ATTACHED = frozenset(",.!?।")


def weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> str:
    """One phrase from ``(phrase, weight)`` pairs."""
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def to_record(segments: Sequence[Segment]) -> dict:
    """Join segments into ``{"text", "entities"}`` with character spans."""
    text, entities = "", []
    for piece, label in segments:
        if text and not set(piece) <= _ATTACHED:
            text += " "
        start = len(text)
        text += piece
        if label is not None:
            entities.append({"start": start, "end": len(text), "label": label})
    return {"text": text, "entities": entities}


class Sampler:
    """Draws positive and negative utterances for one split.

    Args:
        rng: The only source of randomness.
        pools: This split's lexicon pool per entity type (``{"STORE": (...), ...}``).
    """

    def __init__(self, rng: random.Random, pools: Mapping[str, Sequence[Entry]]) -> None:
        self.rng = rng
        self.pools = pools
        self._templates = {
            lang: [t for t in TEMPLATES if t.lang == lang] for lang in ("hi", "en", "deva")
        }

    def positive(self, lang: str) -> list[Segment]:
        """An utterance with entities, from a ``lang`` template."""
        templates = self._templates[lang]
        template = self.rng.choices(templates, weights=[t.weight for t in templates])[0]
        used: list[Entry] = []
        core: list[Segment] = []
        for token in parse(template.pattern):
            slot = slot_of(token)
            if slot is None:
                core.append((token, None))
            elif not slot[1] or self.rng.random() < P_OPTIONAL_QTY:
                core.append(self._fill(slot[0], lang, used))
        return self._dress(core, lang)

    def negative(self, lang: str) -> list[Segment]:
        """An utterance without entities ("cart dikhao", "mera order cancel karo")."""
        phrase = self.rng.choice(NEGATIVES[lang])
        return self._dress([(word, None) for word in phrase.split()], lang)

    def _fill(self, slot: str, lang: str, used: list[Entry]) -> Segment:
        if slot == "ORDER":
            return weighted(self.rng, ORDER_VERBS[lang]), None
        if slot == "QTY":
            return weighted(self.rng, QUANTITIES[lang]), "QTY"
        if slot == "PREF":
            return weighted(self.rng, PREFERENCES[lang]), "PREF"
        script = "deva" if lang == "deva" else "latin"
        # Two dishes in one sentence are two different dishes.
        entries = [e for e in self.pools[slot] if e.forms(script) and e not in used]
        entry = self.rng.choice(entries)
        used.append(entry)
        forms = entry.forms(script)
        # The usual spelling (listed first) about half the time, variants the rest.
        form = self.rng.choices(forms, weights=[len(forms)] + [1] * (len(forms) - 1))[0]
        return form, slot

    def _dress(self, core: list[Segment], lang: str) -> list[Segment]:
        """Add fillers, spelling variants, casing and end punctuation."""
        rng = self.rng
        segments = list(core)
        if rng.random() < P_HEAD_FILLER:
            head = [(rng.choice(HEAD_FILLERS[lang]), None)]
            if rng.random() < P_COMMA_AFTER_HEAD:
                head.append((",", None))
            segments = head + segments
        if rng.random() < P_TAIL_FILLER:
            if rng.random() < P_COMMA_BEFORE_TAIL:
                segments.append((",", None))
            segments.append((rng.choice(TAIL_FILLERS[lang]), None))
        if lang == "hi":
            segments = [self._respell(s) for s in segments]
        punct = weighted(rng, END_PUNCTUATION)
        if punct:
            segments.append((punct, None))
        # Devanagari has no case; skip the draw so scripts stay comparable.
        return segments if lang == "deva" else _recase(segments, weighted(rng, CASINGS))

    def _respell(self, segment: Segment) -> Segment:
        text, label = segment
        if label is not None:
            return segment
        words = [
            self.rng.choice(SPELLINGS[w])
            if w in SPELLINGS and self.rng.random() < P_SPELLING_VARIANT
            else w
            for w in text.split(" ")
        ]
        return " ".join(words), label


def _recase(segments: list[Segment], casing: str) -> list[Segment]:
    if casing == "upper":
        return [(text.upper(), label) for text, label in segments]
    if casing == "sentence":
        (text, label), rest = segments[0], segments[1:]
        return [(text[:1].upper() + text[1:], label), *rest]
    if casing == "title_entities":
        return [
            (" ".join(w[:1].upper() + w[1:] for w in text.split(" ")) if label else text, label)
            for text, label in segments
        ]
    return segments
