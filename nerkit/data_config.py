"""Where a run's data is and how to read it: :class:`DataConfig`, validated at the edge.

nerkit.data loads the splits it names (its module doc says how a path is resolved).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nerkit.bio import check_policy
from nerkit.labels import split_tag
from nerkit.paths import local_absolute
from nerkit.readers import check_format

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how to read it.

    Attributes:
        path: A directory of split files, a single file to split, or ``None`` for the
            bundled corpus.
        train: A train file that overrides the one found from ``path``.
        dev: A dev file that overrides the one found from ``path``.
        test: A test file that overrides the one found from ``path``.
        format: ``"auto"`` or one of :data:`nerkit.readers.FORMATS`, for every file.
        on_invalid: ``"error"``, ``"repair"`` or ``"skip"`` (see :mod:`nerkit.bio`).
        split_seed: Seed of the shuffle before a single file is split.
        split_ratios: ``(train, dev, test)`` shares for a single file; they sum to 1.
        label_names: The label of each integer tag id, in id order, for data whose tags
            are integers with no names attached (JSONL, or Parquet/datasets without a
            ``ClassLabel``); ignored where the data names its labels.
        fingerprint: The fingerprint (:attr:`NerDataset.fingerprint`) of the data a run
            of this config trained on. Training fills it into every config it saves, so
            re-running a saved config on data that has changed since is refused
            (nerkit.train); ``None``: whatever the data is now.
    """

    path: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    format: str = "auto"
    on_invalid: str = "error"
    split_seed: int = 13
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    label_names: tuple[str, ...] | None = None
    fingerprint: str | None = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DataConfig":
        """Build from a mapping (a YAML file's ``data:``, a stored config): unknown keys
        are errors, and lists (YAML and JSON have no tuples) become tuples."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known, key=str)  # a YAML key may be a number
        if unknown:
            raise ValueError(f"unknown data setting(s) {unknown}; allowed are {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def with_absolute_paths(self) -> "DataConfig":
        """The same config with every existing local path made absolute
        (:func:`nerkit.paths.local_absolute`), as configs are stored: they are re-run and
        read from other directories and machines."""
        return dataclasses.replace(self, **{k: local_absolute(getattr(self, k)) for k in ("path", *SPLITS)})

    def __post_init__(self) -> None:
        for name in ("path", *SPLITS):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
            elif value is not None and not isinstance(value, str):
                raise ValueError(f"{name} is {value!r}, but must be a path string or None")
            if isinstance(getattr(self, name), str) and not getattr(self, name).strip():
                # Path("") is the working directory, which exists: --data "$UNSET" would
                # read ./train.jsonl unannounced, and --dev "" would be dropped.
                raise ValueError(f"{name} is {value!r}, but must be a non-empty path (or left out: "
                                 f"{'the bundled corpus' if name == 'path' else 'the one found from path'})")
        check_format(self.format)
        check_policy(self.on_invalid)
        if not isinstance(self.split_seed, int) or isinstance(self.split_seed, bool):
            raise ValueError(f"split_seed is {self.split_seed!r}, but must be an integer")
        ratios = tuple(self.split_ratios) if isinstance(self.split_ratios, (list, tuple)) else ()
        if len(ratios) != 3 or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 0
                                       for r in ratios):
            raise ValueError(
                f"split_ratios is {self.split_ratios!r}, but must be 3 non-negative numbers "
                "(train, dev, test)"
            )
        if ratios[0] <= 0 or ratios[1] <= 0 or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"split_ratios is {self.split_ratios!r}, but train and dev must be > 0 and the "
                "three must sum to 1, e.g. (0.8, 0.1, 0.1)"
            )
        object.__setattr__(self, "split_ratios", tuple(float(r) for r in ratios))
        if self.label_names is not None:
            names = self.label_names
            if (not isinstance(names, (list, tuple)) or not names
                    or not all(isinstance(n, str) and n.strip() == n and n for n in names)
                    or len(set(names)) != len(names)):
                raise ValueError(f"label_names is {names!r}, but must be a non-empty list of distinct labels in "
                                 "id order, e.g. ['O', 'B-FOOD', 'I-FOOD']")
            for name in names:
                try:
                    split_tag(name)
                except ValueError as exc:
                    # Else every record with this id is blamed (and skipped) for the name given here.
                    raise ValueError(f"label_names is {names!r}, but {exc}; give IOB2 labels in id order, "
                                     "e.g. O,B-FOOD,I-FOOD") from None
            object.__setattr__(self, "label_names", tuple(names))
        if self.fingerprint is not None and not (isinstance(self.fingerprint, str)
                                                 and re.fullmatch(r"[0-9a-f]{64}", self.fingerprint)):
            raise ValueError(f"fingerprint is {self.fingerprint!r}, but must be None or the 64 hex digits "
                             "a run recorded (remove it to train on the data as it is)")
