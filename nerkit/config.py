"""The training configuration: every setting in one place, parsed once at the edge.

A :class:`TrainConfig` is frozen, validated in ``__post_init__`` and stored whole
(``to_dict()``) with every checkpoint and every search trial row, so a checkpoint
explains itself. A search trial is the search's base config with the sampled values
applied through :meth:`TrainConfig.with_overrides`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from nerkit.data import DataConfig
from nerkit.model import BUNDLED_MODEL, DEFAULT_MAX_LENGTH, MIN_MAX_LENGTH
from nerkit.weights import STRATEGIES

LOSSES = ("ce", "focal")
PRECISIONS = ("auto", "fp32", "bf16")
EMBEDDING_UPDATES = ("auto", "sparse", "dense")
#: Training reports epochs rounded to this many decimals, so an evaluation at a
#: fractional epoch (0.3) reads as that number and meets a schedule's milestone there.
EPOCH_DECIMALS = 6


@dataclass(frozen=True)
class TrainConfig:
    # -- model and inputs
    model: str = BUNDLED_MODEL          # HF hub name, local path, or "bundled-minilm"
    max_length: int = DEFAULT_MAX_LENGTH  # subword tokens per record, special tokens included
    label_all_subwords: bool = False    # False: first subword labelled, rest -100
    data: DataConfig = field(default_factory=DataConfig)
    # -- loss and class weights (see nerkit.weights / nerkit.losses)
    loss: str = "ce"                    # "ce" = weighted cross-entropy, "focal"
    gamma: float = 2.0                  # focal exponent; only used with loss="focal"
    weight_strategy: str = "none"       # seed | inverse | effective | none
    o_weight: float = 1.0               # multiplier on the O weight (team: 0.5)
    entity_boost: float = 1.0           # multiplier on entity weights (team: 3.0)
    smoothing: float = 1.0              # inverse-frequency exponent
    beta: float = 0.999                 # effective-number beta
    max_weight: float | None = None     # cap on any class weight
    entity_o_ratio: float | None = None # set the entity:O weight ratio directly
                                        # (replaces o_weight/entity_boost; see weights.py)
    # -- optimisation
    learning_rate: float = 5e-5
    batch_size: int = 16
    epochs: float = 5                   # may be fractional (a search budget in epochs)
    warmup_ratio: float = 0.1           # linear warmup share of all steps, then linear decay
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 13
    freeze_embeddings: bool = False     # keep the word-embedding matrix fixed (faster)
    embedding_update: str = "auto"      # sparse: AdamW on the rows batches use (same maths,
                                        # nerkit.sparse_embedding); auto: sparse on CPU
                                        # when training uses <= 10% of the rows
    # -- evaluation
    eval_every_steps: int | None = None  # None: evaluate evals_per_epoch times per epoch
    evals_per_epoch: int = 1             # evenly spaced evaluations per pass over the train
                                         # split (2: every half epoch), the same share of the
                                         # data whatever the batch size, so a search's ASHA
                                         # rungs below one epoch meet an evaluation
    early_stopping_patience: int | None = None  # evaluations without dev-F1 gain
    collapse_eps: float = 0.005          # entity_pred_ratio below this flags collapse
    # -- runtime
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    precision: str = "auto"              # auto: bf16 autocast where the GPU/CPU has bf16 units
    num_threads: int | None = None       # CPU threads; None: torch's default
    length_grouping: bool = True         # batch records of similar length (less padding)

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(f"{name} is {getattr(self, name)!r}, but must be {allowed}")

        if isinstance(self.data, dict):
            object.__setattr__(self, "data", DataConfig.from_dict(self.data))
        if not isinstance(self.data, DataConfig):
            raise bad("data", "a mapping of data settings (path, format, on_invalid, ...)")
        # Types first: YAML and JSON hand over strings, booleans and None as readily as
        # numbers, and a wrong type would fail (or mislead) far from the file it came from.
        check_field_types(self)
        for name, allowed in (("loss", LOSSES), ("weight_strategy", STRATEGIES), ("precision", PRECISIONS),
                              ("embedding_update", EMBEDDING_UPDATES)):
            if getattr(self, name) not in allowed:
                raise bad(name, f"one of {list(allowed)}")
        if not self.model.strip():
            raise bad("model", "a hub name, a local path or 'bundled-minilm'")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise bad("device", "auto, cpu, cuda or cuda:N")
        if self.entity_o_ratio is not None and (self.o_weight != 1.0 or self.entity_boost != 1.0):
            raise ValueError(
                f"entity_o_ratio={self.entity_o_ratio} replaces o_weight and entity_boost, but they "
                f"are {self.o_weight} and {self.entity_boost}; leave them at 1.0"
            )
        # `not x >= 0` (rather than `x < 0`) also refuses NaN; finiteness is checked with the types.
        if not self.gamma >= 0:
            raise bad("gamma", ">= 0")
        for name in ("o_weight", "entity_boost", "learning_rate", "epochs", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise bad(name, "> 0")
        for name in ("max_weight", "entity_o_ratio"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise bad(name, "> 0 or unset (null)")
        if not 0 <= self.smoothing <= 2:
            raise bad("smoothing", "in [0, 2]")
        if self.max_weight is not None and self.entity_o_ratio is not None:
            raise ValueError(f"max_weight={self.max_weight} and entity_o_ratio={self.entity_o_ratio} cannot be "
                             "combined: the cap changes the entity:O ratio; use one of them")
        if not 0 <= self.beta < 1:
            raise bad("beta", "in [0, 1)")
        if not self.weight_decay >= 0:
            raise bad("weight_decay", ">= 0")
        if self.batch_size < 1:
            raise bad("batch_size", "an integer >= 1")
        if self.max_length < MIN_MAX_LENGTH:
            raise bad("max_length", f"an integer >= {MIN_MAX_LENGTH}")
        if self.seed < 0:
            raise bad("seed", "an integer >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "in [0, 1)")
        if not 0 <= self.collapse_eps < 1:
            raise bad("collapse_eps", "in [0, 1)")
        for name in ("eval_every_steps", "early_stopping_patience", "num_threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise bad(name, "an integer >= 1 or unset (null)")
        if self.evals_per_epoch < 1:
            raise bad("evals_per_epoch", "an integer >= 1")
        if self.eval_every_steps is not None and self.evals_per_epoch != 1:
            raise ValueError(f"eval_every_steps={self.eval_every_steps} and evals_per_epoch={self.evals_per_epoch} "
                             "both set when to evaluate; use one of them (evals_per_epoch does not depend on "
                             "the batch size)")

    @property
    def focal_gamma(self) -> float:
        """The gamma the loss uses: 0 (plain weighted CE) unless loss is focal."""
        return self.gamma if self.loss == "focal" else 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping (a YAML file, a stored config): unknown keys are errors, and
        number-looking strings (YAML reads ``1e-5``, without a dot, as a string) become numbers."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known, key=str)  # a YAML key may be a number
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; allowed are {sorted(known)}")
        values = {k: parse_number(v) if _FIELD_KINDS.get(k) == "float" else v for k, v in values.items()}
        if isinstance(values.get("data"), dict):
            values["data"] = DataConfig.from_dict(values["data"])
        return cls(**values)

    def with_uniform_weights(self) -> "TrainConfig":
        """Plain (unweighted) class weights: strategy none, O weight and boost 1, and no
        entity:O ratio or weight cap (uniform means uniform, whatever a file set)."""
        return self.with_overrides(weight_strategy="none", o_weight=1.0, entity_boost=1.0, entity_o_ratio=None,
                                   max_weight=None)

    def with_overrides(self, **overrides: Any) -> "TrainConfig":
        """A copy with some settings replaced (validated again)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; allowed are {sorted(known)}")
        return dataclasses.replace(self, **overrides)


@functools.lru_cache(maxsize=None)  # per class: every TrainConfig made (with_overrides too) asks
def field_kinds(cls) -> tuple[dict[str, str], frozenset[str]]:
    """Each scalar field's type from its annotation ("float | None" → "float", optional),
    so the checks cannot drift from the fields; for any dataclass of settings."""
    kinds, optional = {}, set()
    for f in dataclasses.fields(cls):
        # A string under `from __future__ import annotations` (quoted once more where a
        # quoted annotation met that import); else the type itself.
        text = f.type.__name__ if isinstance(f.type, type) else str(f.type).replace(" ", "").replace("typing.", "")
        text = text.strip("'\"")
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional["):-1] + "|None"
        parts = text.split("|")
        scalar = [p for p in parts if p in ("str", "int", "float", "bool")]
        if scalar and len(scalar) == len([p for p in parts if p != "None"]) == 1:
            kinds[f.name] = scalar[0]
            if "None" in parts:
                optional.add(f.name)
        elif scalar:
            # A union of scalars (int | str) has no one kind to check: say so where it is
            # written, not by leaving the field unchecked.
            raise TypeError(f"{cls.__name__}.{f.name}: annotation {text!r} has no single scalar kind to check")
    return kinds, frozenset(optional)


def check_field_types(settings: Any) -> None:
    """Refuse a dataclass of settings whose scalar field holds a value of another type:
    YAML, JSON and callers hand over strings, booleans and None as readily as numbers
    ("float" accepts ints; no kind accepts bools but "bool").

    Raises:
        ValueError: naming the field, the value given and the type allowed.
    """
    kinds, optional = field_kinds(type(settings))
    for name, kind in kinds.items():
        value = getattr(settings, name)
        if value is None and name in optional:
            continue
        if not _is_kind(value, kind):
            allowed = _KIND_WORDS[kind] + (" or unset (null)" if name in optional else "")
            raise ValueError(f"{name} is {value!r}, but must be {allowed}")


#: The type each scalar TrainConfig setting must have.
_FIELD_KINDS, _ = field_kinds(TrainConfig)


def setting_kind(name: str) -> str | None:
    """``"str"``, ``"int"``, ``"float"`` or ``"bool"`` for a scalar TrainConfig setting, else None."""
    return _FIELD_KINDS.get(name)


_KIND_WORDS = {"str": "a string", "int": "an integer", "float": "a finite number", "bool": "true or false"}


def _is_kind(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "bool"
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, {"str": str, "bool": bool}[kind])


def parse_number(value: Any) -> Any:
    """A number-looking string as its float (YAML 1.1 reads ``1e-5``, without a dot, as a
    string); anything else unchanged, for the validation that follows to judge."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
