"""Predict entities with character spans from a saved model directory.

Text is split into words exactly as the data readers split a record's text (nerkit.text;
``split="spaces"``: at whitespace only, for text split beforehand as pre-split data was), each
word is labelled by its first subword (the alignment the model was trained with),
and B-/I- runs are merged into entities whose character spans index the input
string. A text longer than the model's window is tagged in overlapping windows, each
word taking the prediction of the window where it sits furthest from an edge, so no
word goes untagged. Models with IO labels (``FOOD`` without a prefix) work too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nerkit.device import resolve_device
from nerkit.hub import load_options, unreachable_note
from nerkit.labels import labels_from_config
from nerkit.model import TOKENIZER_FILES, check_model_dir, resolve_model, subword_limit
from nerkit.text import splitter

#: Windows of text run through the model at once (memory: activations of this many windows).
WINDOWS_PER_PASS = 32


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
    conlleval reading), so an ill-formed prediction still yields its entity. A tag
    without a ``B-``/``I-`` prefix (IO labels: ``FOOD``) reads as ``I-FOOD``.

    >>> tags_to_spans(["B-STORE", "I-STORE", "O", "I-FOOD"])
    [('STORE', 0, 2), ('FOOD', 3, 4)]
    >>> tags_to_spans(["FOOD", "FOOD", "O", "LOC"])
    [('FOOD', 0, 2), ('LOC', 3, 4)]
    """
    spans: list[tuple[str, int, int]] = []
    current: list | None = None
    for i, tag in enumerate(tags):
        if tag == "O":
            current = None
            continue
        prefix, sep, etype = tag.partition("-")
        if not sep or prefix not in ("B", "I") or not etype:
            prefix, etype = "I", tag
        if prefix == "I" and current is not None and current[0] == etype and current[2] == i:
            current[2] = i + 1
            spans[-1] = tuple(current)  # type: ignore[assignment]
            continue
        current = [etype, i, i + 1]
        spans.append(tuple(current))  # type: ignore[arg-type]
    return spans


def check_labels(labels: Sequence[str], where: str) -> None:
    """Refuse label sets no entity can be read from (names the model and the fix)."""
    if labels and all(re.fullmatch(r"LABEL_\d+", label) for label in labels):
        raise ValueError(f"{where} has labels {list(labels)[:3]}...: no entity names, so it was not fine-tuned "
                         "for NER (a base model?); train one with `nerkit train` or pass a model with named labels")
    if "O" not in labels:
        raise ValueError(f"{where} has labels {list(labels)}, with no 'O'; nerkit reads IOB2 ('O', 'B-X', 'I-X') "
                         "or IO ('O', 'X') labels")
    # BIOES/BILOU: an S-/E-/L-/U- label beside the B-/I- labels of its type (an IO type
    # that merely starts so, "E-MAIL", has no B-MAIL beside it).
    other = [label for label in labels if re.match(r"[ESLU]-", label)
             and {f"B-{label[2:]}", f"I-{label[2:]}"} & set(labels)]
    if other:
        # Read as IO, "S-FOOD" would be an entity type of its own, and E-/L- ends would
        # split entities in two.
        raise ValueError(f"{where} has labels {other[:3]} of a BIOES/BILOU scheme; nerkit reads IOB2 ('O', 'B-X', "
                         "'I-X') or IO ('O', 'X') labels")


def window_length(model, tokenizer) -> int:
    """Subwords per window: what the tokenizer and the position embeddings allow."""
    return min(512, subword_limit(tokenizer, model.config) or 512)


class Predictor:
    """A loaded model that turns strings into entities.

    ``max_length`` is the window in subwords (default: what the model allows, see
    :func:`window_length`); longer texts are tagged window by window.
    """

    def __init__(self, model, tokenizer, max_length: int | None = None, device: str = "auto",
                 name: str = "the model", split: str = "text") -> None:
        self.split_words = splitter(split)  # a bad mode is refused before the model moves
        self.device = resolve_device(device)
        self.labels = labels_from_config(model.config, name)
        check_labels(self.labels, name)  # name: what errors call the model (its directory)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length or window_length(model, tokenizer)
        if self.max_length < 4:
            raise ValueError(f"max_length is {self.max_length}, but must be >= 4 (special tokens and one word)")

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "auto", split: str = "text") -> "Predictor":
        """Load a model directory (``nerkit train --output-dir``, ``nerkit pull``) or a hub name.

        ``split``: how texts are split into words (:data:`nerkit.text.WORD_SPLITS`):
        ``text`` as the readers split a record's text, ``spaces`` at whitespace only, for
        text split into words beforehand as pre-split training data (CoNLL) was."""
        splitter(split)  # before minutes of loading
        from transformers import AutoModelForTokenClassification

        from nerkit.alignment import load_tokenizer

        resolved = resolve_device(device)  # before minutes of loading
        # nerkit's own names first (bundled-minilm), and a path that is not there named as
        # given ("./nosuch"), not sent to the hub as "nosuch" and blamed on the network.
        name = resolve_model(str(path))
        if name == str(path):
            check_model_dir(name)
        path = Path(name)
        local = path.is_dir()
        if path.is_file():
            raise ValueError(f"{path} is a file; give the model's directory ({path.parent}, if this is its "
                             f"{path.name})")
        if local and not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a model directory (no config.json); give a directory "
                             "written by `nerkit train --output-dir` or `nerkit pull`")
        if local and not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise ValueError(f"{path} has no tokenizer (none of {list(TOKENIZER_FILES)}); it is incomplete: "
                             "pull it again, or save the tokenizer beside the model")
        # A local directory loads safetensors weights (nerkit writes only those), or a
        # PyTorch .bin when that is all it has (a model saved elsewhere); the hub, either.
        bin_only = local and not any(path.glob("*.safetensors")) and any(path.glob("pytorch_model*.bin"))
        try:
            # float32 as it was trained (nerkit.model.load_model), whatever dtype it was saved in.
            model = AutoModelForTokenClassification.from_pretrained(
                str(path), use_safetensors=None if (bin_only or not local) else True, dtype=torch.float32,
                **load_options(str(path)))
            tokenizer = load_tokenizer(str(path))
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged files, unknown hub names: one clear error
            why = (None if local else unreachable_note(str(path))) or (
                f"{type(exc).__name__}: " + " ".join(str(exc).split()).rstrip("."))  # the hub's run over lines
            where = "" if local else f" (no local directory {str(path)!r} either)"
            raise ValueError(f"could not load the model {str(path)!r}{where}: {why}. A damaged "
                             "directory: pull it again; a hub name: check it and the network") from None
        return cls(model, tokenizer, device=str(resolved), name=str(path), split=split)

    @torch.no_grad()
    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[list[Entity]]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"text {i} is a {type(text).__name__}, but must be a string")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"text {i} is not valid UTF-8 ({text[:40]!r})") from None
        out: list[list[Entity]] = []
        for start in range(0, len(texts), batch_size):
            out += self._predict_batch(texts[start : start + batch_size])
        return out

    def _predict_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        words = [self.split_words(t) for t in texts]
        inputs = [[w for w, _, _ in ws] for ws in words]
        # Overlapping windows: `stride` subwords of each window repeat at the start of the next.
        stride = max(1, (self.max_length - 2) // 4)
        enc = self.tokenizer(
            [ws or [""] for ws in inputs], is_split_into_words=True, truncation=True, max_length=self.max_length,
            stride=stride, return_overflowing_tokens=True, padding=True, return_tensors="pt",
        )
        # At most WINDOWS_PER_PASS windows per forward pass: a long document is many windows,
        # and one pass over all of them grew memory with the text (+25 MB per MiniLM window).
        ids, mask = enc["input_ids"], enc["attention_mask"]
        probs = torch.cat([
            self.model(input_ids=ids[i:i + WINDOWS_PER_PASS].to(self.device),
                       attention_mask=mask[i:i + WINDOWS_PER_PASS].to(self.device)).logits.float().softmax(-1).cpu()
            for i in range(0, len(ids), WINDOWS_PER_PASS)
        ])
        # For each text, each word's first subword in the window where it sits furthest from an edge.
        best: list[dict[int, tuple[int, int, int]]] = [{} for _ in texts]  # word -> (margin, window, pos)
        for window, sample in enumerate(enc["overflow_to_sample_mapping"].tolist()):
            ids = enc.word_ids(window)
            real = [p for p, w in enumerate(ids) if w is not None]
            seen: set[int] = set()
            for pos in real:
                wid = ids[pos]
                if wid in seen:  # a continuation subword
                    continue
                seen.add(wid)
                # A word that began in the previous window shows only its tail here, at
                # the window's first position: margin 0, which never beats the entry its
                # real first subword made there (ties keep the earlier window).
                margin = min(pos - real[0], real[-1] - pos)
                if wid not in best[sample] or margin > best[sample][wid][0]:
                    best[sample][wid] = (margin, window, pos)
        results = []
        for sample, (text, ws) in enumerate(zip(texts, words)):
            # Words with no subword get no prediction: characters the tokenizer drops
            # (U+FE0F after an emoji).
            kept = sorted(w for w in best[sample] if w < len(ws))
            word_probs = [probs[best[sample][w][1], best[sample][w][2]] for w in kept]
            tags = [self.labels[int(p.argmax())] for p in word_probs]
            ents = []
            for etype, a, b in tags_to_spans(tags):
                score = sum(float(word_probs[i].max()) for i in range(a, b)) / (b - a)
                s, e = ws[kept[a]][1], ws[kept[b - 1]][2]
                ents.append(Entity(text[s:e], etype, s, e, round(score, 4)))
            results.append(ents)
        return results
