"""Predict entities with character spans from a saved model directory.

Text is split into words exactly as the data readers split it (nerkit.text), each
word is labelled by its first subword (the alignment the model was trained with),
and B-/I- runs are merged into entities whose character spans index the input
string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nerkit.labels import LabelMap
from nerkit.text import split_words


@dataclass(frozen=True)
class Entity:
    text: str
    label: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


def tags_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first_word, last_word_exclusive)`` for each entity in a tag sequence.

    An ``I-X`` that does not continue an ``X`` entity starts a new one (the lenient
    conlleval reading), so an ill-formed prediction still yields its entity.

    >>> tags_to_spans(["B-STORE", "I-STORE", "O", "I-FOOD"])
    [('STORE', 0, 2), ('FOOD', 3, 4)]
    """
    spans: list[tuple[str, int, int]] = []
    current: list | None = None
    for i, tag in enumerate(tags):
        prefix, _, etype = tag.partition("-")
        if tag == "O" or not etype:
            current = None
            continue
        if prefix == "I" and current is not None and current[0] == etype and current[2] == i:
            current[2] = i + 1
            spans[-1] = tuple(current)  # type: ignore[assignment]
            continue
        current = [etype, i, i + 1]
        spans.append(tuple(current))  # type: ignore[arg-type]
    return spans


class Predictor:
    """A loaded model directory that turns strings into entities."""

    def __init__(self, model, tokenizer, max_length: int = 512, device: str = "auto") -> None:
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.label_map = LabelMap.from_id2label(model.config.id2label)
        self.max_length = max_length

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "auto") -> "Predictor":
        from transformers import AutoModelForTokenClassification

        from nerkit.alignment import load_tokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a model directory (no config.json); give a directory "
                             "written by `nerkit train --output-dir` or `nerkit pull`")
        model = AutoModelForTokenClassification.from_pretrained(str(path), use_safetensors=True)
        return cls(model, load_tokenizer(str(path)), device=device)

    @torch.no_grad()
    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[list[Entity]]:
        out: list[list[Entity]] = []
        for start in range(0, len(texts), batch_size):
            out += self._predict_batch(texts[start : start + batch_size])
        return out

    def _predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        words = [split_words(t) for t in texts]
        enc = self.tokenizer(
            [[w for w, _, _ in ws] for ws in words], is_split_into_words=True, truncation=True,
            max_length=self.max_length, padding=True, return_tensors="pt",
        )
        logits = self.model(input_ids=enc["input_ids"].to(self.device),
                            attention_mask=enc["attention_mask"].to(self.device)).logits
        probs = logits.float().softmax(-1).cpu()
        results = []
        for row, (text, ws) in enumerate(zip(texts, words)):
            first: dict[int, int] = {}
            for pos, wid in enumerate(enc.word_ids(row)):
                if wid is not None and wid not in first:
                    first[wid] = pos
            # Words with no subword get no prediction: those past max_length, and
            # characters the tokenizer drops (U+FE0F after an emoji, zero-width joiners).
            kept = sorted(first)
            word_probs = [probs[row, first[i]] for i in kept]
            tags = [self.label_map.labels[int(p.argmax())] for p in word_probs]
            ents = []
            for etype, a, b in tags_to_spans(tags):
                score = sum(float(word_probs[i].max()) for i in range(a, b)) / (b - a)
                s, e = ws[kept[a]][1], ws[kept[b - 1]][2]
                ents.append(Entity(text[s:e], etype, s, e, round(score, 4)))
            results.append(ents)
        return results
