"""Search spaces as data, and the spaces that come with nerkit.

A space file has these sections (see search_spaces/default.yaml, every key commented):

* ``params`` — the searched settings. Each is a TrainConfig field with a
  distribution: ``loguniform``/``uniform`` (``low``, ``high``), ``int`` (``low``,
  ``high``, optional ``step``), ``choice`` (``values``) or ``fixed`` (``value``).
  ``when: {other_param: value-or-list}`` makes a parameter conditional (e.g.
  ``gamma`` only when ``loss`` is ``focal``).
* ``base`` — fixed TrainConfig settings for every trial.
* ``budget`` — ASHA's budget in epochs: ``max_epochs``, ``grace_epochs``,
  ``reduction_factor``.
* ``collapse_guard`` — ``enabled``, ``eps``, ``grace``, ``patience``, ``min_rise`` (see tune.guard).
* ``baselines`` — named points enqueued as the first trials, so every search shows
  whether it beat them.

This module holds the space as data (:class:`SearchSpace` and its parts) and finds the
bundled spaces; ``tune.space_file`` reads and validates a file into it, and
``tune.space_checks`` holds the checks across parameters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tune.guard import GuardConfig

KINDS = {
    "loguniform": {"low", "high"},
    "uniform": {"low", "high"},
    "int": {"low", "high", "step"},
    "choice": {"values"},
    "fixed": {"value"},
}
SECTIONS = {"params", "base", "budget", "collapse_guard", "baselines", "description"}
# Settings a space may not search or fix: they come from the command line.
RESERVED = {"data", "model", "epochs", "device", "num_threads", "max_length"}
# A search flags collapse where its guard judges it: collapse_guard.eps sets both.
GUARDED = {"collapse_eps"}
# Settings that change the tokenised data, which a search prepares once for all trials:
# fixed in base they hold for every trial; searched, a trial would train on data not its own.
DATA_SHAPING = {"label_all_subwords"}
# Settings that are loss weights or rates and so must be > 0 across their range.
POSITIVE = {"o_weight", "entity_boost", "entity_o_ratio", "learning_rate", "max_weight", "batch_size"}
NON_NEGATIVE = {"gamma", "smoothing", "weight_decay", "warmup_ratio"}


@dataclass(frozen=True)
class Budget:
    max_epochs: float = 4.0       # ASHA max_t, and every trial's epoch budget
    grace_epochs: float = 1.0     # ASHA grace period: no trial stopped before this
    reduction_factor: float = 3.0  # ASHA keeps the top 1/reduction_factor at each rung

    def __post_init__(self) -> None:
        for name in ("max_epochs", "grace_epochs", "reduction_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"budget.{name} is {value!r}, but must be a finite number")
        if not self.max_epochs > 0:
            raise ValueError(f"budget.max_epochs is {self.max_epochs}, but must be > 0")
        if not 0 < self.grace_epochs <= self.max_epochs:
            raise ValueError(
                f"budget.grace_epochs is {self.grace_epochs}, but must be in (0, max_epochs={self.max_epochs}]"
            )
        if not self.reduction_factor >= 2:
            raise ValueError(f"budget.reduction_factor is {self.reduction_factor}, but must be >= 2")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    values: tuple | None = None
    value: Any = None
    when: tuple[tuple[str, tuple], ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Param":
        """Inverse of ``dataclasses.asdict`` (``search.json`` stores lists for tuples)."""
        return cls(**{**d, "values": tuple(d["values"]) if d.get("values") is not None else None,
                      "when": tuple((k, tuple(v)) for k, v in d.get("when", ()))})

    def active(self, sampled: dict[str, Any]) -> bool:
        return all(sampled.get(k) in vs for k, vs in self.when)

    def contains(self, v: Any) -> bool:
        if self.kind == "choice":
            return v in self.values
        if self.kind == "fixed":
            return v == self.value
        if self.kind == "int" and self.step and isinstance(v, (int, float)) and (v - self.low) % self.step:
            return False  # between steps: Optuna would run it anyway, off the grid it searches
        return isinstance(v, (int, float)) and self.low <= v <= self.high

    def suggest(self, trial) -> Any:
        if self.kind == "loguniform":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.kind == "uniform":
            return trial.suggest_float(self.name, self.low, self.high)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step or 1)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.values))
        return self.value

    def distribution(self):
        """The Optuna distribution :meth:`suggest` samples from (not for ``fixed``)."""
        import optuna

        if self.kind in ("loguniform", "uniform"):
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.kind == "loguniform")
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), step=self.step or 1)
        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.values))
        raise ValueError(f"{self.name} is a {self.kind} parameter, which has no distribution")


@dataclass(frozen=True)
class Baseline:
    name: str
    params: dict[str, Any]


@dataclass(frozen=True)
class SearchSpace:
    source: str
    params: tuple[Param, ...]
    base: dict[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    guard: GuardConfig = field(default_factory=GuardConfig)
    baselines: tuple[Baseline, ...] = ()
    description: str = ""

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.kind != "fixed")

    def sample(self, trial) -> dict[str, Any]:
        """Define-by-run sampling for Optuna: conditional params only when active."""
        out: dict[str, Any] = {}
        for p in self.params:
            if p.active(out):
                out[p.name] = p.suggest(trial)
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchSpace":
        """Inverse of :meth:`to_dict`: the space as ``search.json`` recorded it."""
        return cls(source=d["source"], params=tuple(Param.from_dict(p) for p in d["params"]), base=d["base"],
                   budget=Budget(**d["budget"]), guard=GuardConfig(**d["guard"]),
                   baselines=tuple(Baseline(**b) for b in d["baselines"]), description=d["description"])

    def with_budget(self, **changes: Any) -> "SearchSpace":
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, budget=dataclasses.replace(self.budget, **changes)) if changes else self

    def with_guard(self, **changes: Any) -> "SearchSpace":
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, guard=dataclasses.replace(self.guard, **changes)) if changes else self


class Sampler:
    """A picklable define-by-run function (Ray saves the searcher with pickle)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, trial) -> dict[str, Any] | None:
        sampled = self.space.sample(trial)
        # Fixed values are returned (not suggested) so Optuna stores only real dimensions.
        return {p.name: p.value for p in self.space.params if p.kind == "fixed" and p.active(sampled)}


#: Where a wheel install puts the bundled spaces, under its prefix (pyproject.toml's data-files).
SHARED_SPACES = Path("share", "nerkit", "search_spaces")


def _bundled_spaces() -> Path:
    """The search spaces that come with nerkit: ``search_spaces/`` in the repository (a
    checkout, or an editable install), else the copy a wheel install put under its prefix
    (``pip install nerkit.whl``; ``--user`` installs under the user base)."""
    import site
    import sys

    here = Path(__file__).resolve()
    repo = here.parents[1] / "search_spaces"
    # <prefix>/lib/pythonX.Y/site-packages/tune/space.py: the prefix this copy was
    # installed under (pip --prefix, Debian's /usr/local), which need not be sys.prefix.
    installed = here.parents[4] / SHARED_SPACES if len(here.parents) > 4 else repo
    for where in (repo, installed, Path(sys.prefix) / SHARED_SPACES, Path(site.getuserbase()) / SHARED_SPACES):
        if where.is_dir():
            return where
    return repo


BUNDLED_SPACES = _bundled_spaces()
#: What ``nerkit search`` runs without ``--space``.
DEFAULT_SPACE = BUNDLED_SPACES / "default.yaml"


def resolve_space(given: str | Path | None) -> Path:
    """The search space file ``given`` names: the file itself, or else a bundled space by
    name (``ratio``, ``ratio.yaml`` or ``search_spaces/ratio.yaml``, from any directory).
    None is the bundled default.

    Raises:
        ValueError: no such file; the message lists the bundled spaces.
    """
    if given is None:
        if DEFAULT_SPACE.is_file():
            return DEFAULT_SPACE
        raise ValueError(f"the bundled default search space is not at {DEFAULT_SPACE}: this install of nerkit "
                         "lacks its search spaces (a checkout's search_spaces/, or a wheel's "
                         f"<prefix>/{SHARED_SPACES}); reinstall it from a checkout or a wheel, or give --space FILE")
    path = Path(given).expanduser()
    if path.is_file():
        return path.absolute()
    bundled = BUNDLED_SPACES / (path.name if path.suffix else f"{path.name}.yaml")
    if bundled.is_file() and not path.is_absolute() and (len(path.parts) == 1 or path.parent == Path(BUNDLED_SPACES.name)):
        return bundled
    names = sorted(p.stem for p in BUNDLED_SPACES.glob("*.yaml"))
    raise ValueError(f"search space {str(given)!r}: no such file; give a search space YAML, or one of the "
                     f"bundled spaces by name: {names}")
