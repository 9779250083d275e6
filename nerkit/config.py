"""The training configuration: every setting in one place, parsed once at the edge.

A :class:`TrainConfig` is frozen, validated in ``__post_init__`` and stored whole
(``to_dict()``) with every checkpoint and every search trial row, so a checkpoint
explains itself. A search trial is the search's base config with the sampled values
applied through :meth:`TrainConfig.with_overrides`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nerkit.data import DataConfig
from nerkit.model import BUNDLED_MODEL
from nerkit.weights import STRATEGIES

LOSSES = ("ce", "focal")
PRECISIONS = ("auto", "fp32", "bf16")
EMBEDDING_UPDATES = ("auto", "sparse", "dense")


@dataclass(frozen=True)
class TrainConfig:
    # -- model and inputs
    model: str = BUNDLED_MODEL          # HF hub name, local path, or "bundled-minilm"
    max_length: int = 128               # subword tokens per record, special tokens included
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
    eval_every_steps: int | None = None  # None: evaluate at the end of every epoch
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
            object.__setattr__(self, "data", DataConfig(**self.data))
        if self.loss not in LOSSES:
            raise bad("loss", f"one of {list(LOSSES)}")
        if self.weight_strategy not in STRATEGIES:
            raise bad("weight_strategy", f"one of {list(STRATEGIES)}")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"one of {list(PRECISIONS)}")
        if self.embedding_update not in EMBEDDING_UPDATES:
            raise bad("embedding_update", f"one of {list(EMBEDDING_UPDATES)}")
        if self.entity_o_ratio is not None and (self.o_weight != 1.0 or self.entity_boost != 1.0):
            raise ValueError(
                f"entity_o_ratio={self.entity_o_ratio} replaces o_weight and entity_boost, but they "
                f"are {self.o_weight} and {self.entity_boost}; leave them at 1.0"
            )
        if not self.gamma >= 0:
            raise bad("gamma", ">= 0")
        for name in ("o_weight", "entity_boost", "learning_rate", "epochs"):
            if not getattr(self, name) > 0:
                raise bad(name, "> 0")
        for name in ("batch_size", "max_length"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise bad(name, "an integer >= 1")
        if self.max_length < 8:
            raise bad("max_length", ">= 8")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "in [0, 1)")
        if self.eval_every_steps is not None and self.eval_every_steps < 1:
            raise bad("eval_every_steps", ">= 1 or unset")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise bad("early_stopping_patience", ">= 1 or unset")

    @property
    def focal_gamma(self) -> float:
        """The gamma the loss uses: 0 (plain weighted CE) unless loss is focal."""
        return self.gamma if self.loss == "focal" else 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; allowed are {sorted(known)}")
        values = dict(values)
        if isinstance(values.get("data"), dict):
            data = dict(values["data"])
            if isinstance(data.get("split_ratios"), list):
                data["split_ratios"] = tuple(data["split_ratios"])
            values["data"] = DataConfig(**data)
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> "TrainConfig":
        """A copy with some settings replaced (validated again)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; allowed are {sorted(known)}")
        return dataclasses.replace(self, **overrides)
