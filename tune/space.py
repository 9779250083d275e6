"""Search spaces: loaded from YAML and validated in one place.

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
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerkit.config import TrainConfig, parse_number, setting_kind
from tune.guard import GuardConfig
from nerkit.yaml_lines import load_with_lines

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


# --------------------------------------------------------------------- loading


class _Errors:
    def __init__(self, path: Path, lines: dict[tuple, int]) -> None:
        self.path, self.lines = path, lines

    def __call__(self, key: tuple, problem: str, fix: str = "") -> ValueError:
        line = 0
        for n in range(len(key), -1, -1):
            if key[:n] in self.lines:
                line = self.lines[key[:n]]
                break
        where = f"{self.path}:{line}" if line else str(self.path)
        dotted = ".".join(str(k) for k in key)
        msg = f"{where}: {dotted}: {problem}" if dotted else f"{where}: {problem}"
        return ValueError(msg + (f". Fix: {fix}" if fix else ""))


_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# Settings that are numbers: YAML reads `1e-5` (no dot) as a string, so such strings are
# read as the numbers they look like.
_FLOAT_FIELDS = {name for name in _TRAIN_FIELDS if setting_kind(name) == "float"}


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


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search space file (errors name file, line, key and fix)."""
    path = Path(path)
    raw, lines = load_with_lines(path, "a search space YAML (see search_spaces/)")
    err = _Errors(path, lines)
    if not isinstance(raw, dict):
        raise err((), f"expected a mapping with sections {sorted(SECTIONS)}")
    for key in raw:
        if key not in SECTIONS:
            raise err((key,), f"unknown section {key!r}", f"use one of {sorted(SECTIONS)}")
    base = _parse_base(raw.get("base") or {}, err)
    raw_params = raw.get("params") or {}
    if not isinstance(raw_params, dict):
        raise err(("params",), f"expected a mapping of parameter name to distribution, got {type(raw_params).__name__}",
                  "write e.g. `learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}`")
    params = tuple(_parse_param(name, spec, err) for name, spec in raw_params.items())
    if not params:
        raise err(("params",), "no parameters to search", "add at least one entry under params:")
    _check_conditions(params, err)
    overlap = sorted(set(base) & {p.name for p in params})
    if overlap:
        raise err(("base", overlap[0]), f"{overlap} is both fixed in base and searched in params",
                  "keep it in one section")
    budget_raw = raw.get("budget") or {}
    if isinstance(budget_raw, dict):  # `5e-1` (no dot) is a YAML string; budgets are numbers
        budget_raw = {k: parse_number(v) for k, v in budget_raw.items()}
    budget = _section(Budget, budget_raw, ("budget",), err)
    guard_raw = raw.get("collapse_guard") or {}
    if isinstance(guard_raw, dict):
        # YAML 1.1 reads `1e-2` (no dot) as a string; the guard's thresholds are numbers.
        guard_raw = {k: parse_number(v) if k in ("eps", "min_rise") else v for k, v in guard_raw.items()}
    guard = _section(GuardConfig, guard_raw, ("collapse_guard",), err)
    baselines = tuple(
        _parse_baseline(i, b, params, base, err) for i, b in enumerate(raw.get("baselines") or [])
    )
    names = [b.name for b in baselines]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise err(("baselines",), f"baseline name {dup!r} is used twice", "give every baseline its own name")
    space = SearchSpace(str(path), params, base, budget, guard, baselines, str(raw.get("description", "")))
    # The base config must itself be valid (e.g. entity_o_ratio with o_weight != 1).
    try:
        TrainConfig().with_overrides(**base)
    except (ValueError, TypeError) as exc:
        raise err(("base",), str(exc)) from None
    # So must every value a trial can get: a bad choice ('focall') or a float batch size
    # would otherwise fail inside every trial on the cluster, retries included.
    for p in params:
        for field_name, value in _values_to_check(p):
            try:
                TrainConfig().with_overrides(**{**base, p.name: value})
            except (ValueError, TypeError) as exc:
                raise err(("params", p.name, field_name), f"{p.name} = {value!r}: {exc}") from None
    _check_pairs(params, base, err)
    for i, b in enumerate(baselines):
        try:
            TrainConfig().with_overrides(**{**base, **b.params})
        except (ValueError, TypeError) as exc:
            raise err(("baselines", i), f"baseline {b.name!r}: {exc}") from None
    return space


def _check_pairs(params: tuple[Param, ...], base: dict, err: _Errors) -> None:
    """Every two parameters at their checked values, together, wherever both can be active:
    settings valid alone can exclude each other (``entity_o_ratio`` replaces ``o_weight``),
    and would fail inside every trial that drew both. The parameters their conditions
    depend on (transitively) take each of their values, and only assignments under which
    every one of them is itself active count."""
    by_name = {p.name: p for p in params}
    for i, p in enumerate(params):
        for q in params[i + 1:]:
            context = [c for c in _conditioning(p, q, by_name) if c.name not in (p.name, q.name)]
            for _, v in _values_to_check(p):
                for field_name, w in _values_to_check(q):
                    for assignment in _assignments(context):
                        point = {**assignment, p.name: v, q.name: w}
                        if not all(by_name[n].active(point) for n in point if n in by_name):
                            continue
                        try:
                            TrainConfig().with_overrides(**{**base, **point})
                        except (ValueError, TypeError) as exc:
                            where = ", ".join(f"{k} = {x!r}" for k, x in assignment.items())
                            raise err(("params", q.name, field_name),
                                      f"{p.name} = {v!r} with {q.name} = {w!r}" + (f" (where {where})" if where else "")
                                      + f": {exc}", "search them in separate spaces, make their conditions exclude "
                                      "each other, or fix one of them in base") from None


def _conditioning(p: Param, q: Param, by_name: dict[str, Param]) -> list[Param]:
    """The parameters the conditions of ``p`` and ``q`` depend on, transitively, in space order."""
    seen: set[str] = set()
    todo = [p, q]
    while todo:
        for k, _ in todo.pop().when:
            if k not in seen and k in by_name:
                seen.add(k)
                todo.append(by_name[k])
    return [c for c in by_name.values() if c.name in seen and c.kind in ("choice", "fixed")]


def _assignments(context: list[Param]):
    """Every combination of the conditioning parameters' values (choices, fixed)."""
    options = [[(c.name, x) for x in (c.values if c.kind == "choice" else (c.value,))] for c in context]
    for combo in itertools.product(*options):
        yield dict(combo)


def _values_to_check(p: Param) -> list[tuple[str, Any]]:
    """The values of ``p`` to validate: every choice, the fixed value, both range ends."""
    if p.kind == "choice":
        return [("values", v) for v in p.values or ()]
    if p.kind == "fixed":
        return [("value", p.value)]
    return [("low", p.low), ("high", p.high)]


def _parse_base(base: Any, err: _Errors) -> dict[str, Any]:
    if not isinstance(base, dict):
        raise err(("base",), f"expected a mapping of TrainConfig settings, got {type(base).__name__}")
    for key, value in base.items():
        if key in GUARDED:
            raise err(("base", key), f"{key} follows collapse_guard.eps in a search",
                      "set collapse_guard: {eps: ...} instead")
        if key not in _TRAIN_FIELDS or key in RESERVED:
            raise err(("base", key), f"unknown or reserved training setting {key!r}",
                      f"use one of {sorted(_TRAIN_FIELDS - RESERVED - GUARDED)}; data/model/max_length come from the command line "
                      "(--data, --model, --max-length), epochs from budget")
        _check_sign(key, value, ("base", key), err)
    return {k: parse_number(v) if k in _FLOAT_FIELDS else v for k, v in base.items()}


def _parse_param(name: str, spec: Any, err: _Errors) -> Param:
    key = ("params", name)
    if name not in _TRAIN_FIELDS or name in RESERVED | GUARDED:
        raise err(key, f"unknown or reserved training setting {name!r}",
                  f"use one of {sorted(_TRAIN_FIELDS - RESERVED - DATA_SHAPING - GUARDED)}")
    if name in DATA_SHAPING:
        raise err(key, f"{name} changes the tokenised data, which a search prepares once for all its trials, so "
                  "it cannot be searched", "set it under base: (one value for every trial), and run a second "
                  "search with the other value to compare them")
    if not isinstance(spec, dict):
        spec = {"type": "fixed", "value": spec}  # `name: 0.5` is shorthand for fixed
    kind = spec.get("type")
    if kind not in KINDS:
        raise err(key + ("type",), f"distribution type is {kind!r}", f"use one of {sorted(KINDS)}")
    allowed = KINDS[kind] | {"type", "when"}
    for k in spec:
        if k not in allowed:
            raise err(key + (k,), f"unknown key {k!r} for a {kind} parameter", f"allowed keys are {sorted(allowed)}")
    missing = sorted((KINDS[kind] - {"step"}) - set(spec))
    if missing:
        raise err(key, f"a {kind} parameter needs {missing}")
    raw_when = spec.get("when") or {}
    if not isinstance(raw_when, dict):
        raise err(key + ("when",), f"when is {raw_when!r}, but must be a mapping of parameter to value(s)",
                  "write e.g. `when: {loss: focal}`")
    when = tuple((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in raw_when.items())
    if kind in ("loguniform", "uniform", "int"):
        # PyYAML reads `3e-5` (no dot) as a string; accept numeric strings.
        low, high = (parse_number(spec[b]) for b in ("low", "high"))
        for bound, v in (("low", low), ("high", high)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise err(key + (bound,), f"{bound} is {v!r}, but must be a finite number")
        if not low < high:
            raise err(key, f"empty range: low={low} is not below high={high}", "make low < high")
        if kind == "loguniform" and low <= 0:
            raise err(key + ("low",), f"low is {low}, but a loguniform range must be > 0")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise err(key, f"int bounds must be integers, got low={low}, high={high}")
        step = spec.get("step")
        if step is not None and (not isinstance(step, (int, float)) or isinstance(step, bool) or not step > 0
                                 or (kind == "int" and not float(step).is_integer())):
            raise err(key + ("step",), f"step is {step!r}, but must be a number > 0"
                      + (" and an integer" if kind == "int" else ""))
        _check_sign(name, low, key + ("low",), err)
        return Param(name, kind, float(low) if kind != "int" else int(low),
                     float(high) if kind != "int" else int(high), spec.get("step"), when=when)
    if kind == "choice":
        values = spec["values"]
        if isinstance(values, list) and name in _FLOAT_FIELDS:
            values = [parse_number(v) for v in values]
        if not isinstance(values, list) or not values:
            raise err(key + ("values",), f"values is {values!r}, but must be a non-empty list")
        if len(set(map(repr, values))) != len(values):
            raise err(key + ("values",), f"values {values} has duplicates")
        for v in values:
            _check_sign(name, v, key + ("values",), err)
        return Param(name, kind, values=tuple(values), when=when)
    value = parse_number(spec["value"]) if name in _FLOAT_FIELDS else spec["value"]
    _check_sign(name, value, key + ("value",), err)
    return Param(name, kind, value=value, when=when)


def _check_sign(name: str, value: Any, key: tuple, err: _Errors) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if name in POSITIVE and not value > 0:
        raise err(key, f"{name} is {value}, but must be > 0", "weights and rates cannot be zero or negative")
    if name in NON_NEGATIVE and value < 0:
        raise err(key, f"{name} is {value}, but must be >= 0")


def _check_conditions(params: tuple[Param, ...], err: _Errors) -> None:
    seen: dict[str, Param] = {}
    for p in params:
        for other, values in p.when:
            if other not in seen:
                raise err(("params", p.name, "when"), f"condition on {other!r}, which is not a parameter listed before it",
                          "list the parameter it depends on first")
            ref = seen[other]
            if ref.kind not in ("choice", "fixed"):
                # A drawn float equals a listed value almost never: the parameter would never run.
                raise err(("params", p.name, "when"), f"condition on {other!r}, a {ref.kind} parameter",
                          "condition on a choice (or fixed) parameter only")
            for v in values:
                if not ref.contains(v):
                    raise err(("params", p.name, "when"), f"condition value {v!r} is not a possible value of {other!r}")
        seen[p.name] = p


def _section(cls, values: Any, key: tuple, err: _Errors):
    if not isinstance(values, dict):
        raise err(key, f"expected a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    for k in values:
        if k not in names:
            raise err(key + (k,), f"unknown key {k!r}", f"allowed keys are {sorted(names)}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        # The message names the field ("budget.max_epochs is ..."): point at its line.
        field_name = next((n for n in values if f".{n} is" in str(exc)), None)
        raise err(key + ((field_name,) if field_name else ()), str(exc)) from None


def _baseline_number(name: str, value: Any, by_name: dict[str, Param], base: dict) -> Any:
    """A baseline's number-looking string (YAML 1.1 reads ``5e-5`` as one) as a number
    where the setting it is compared with is numeric, as params and base read theirs."""
    number = parse_number(value)
    if not isinstance(value, str) or number is value:
        return value
    p = by_name.get(name)
    if p is None:
        ref: tuple = (base.get(name, getattr(TrainConfig(), name, None)),)
    else:
        ref = p.values or () if p.kind == "choice" else (p.value,) if p.kind == "fixed" else (p.low,)
    numeric = any(isinstance(x, (int, float)) and not isinstance(x, bool) for x in ref)
    return number if numeric else value


def _parse_baseline(i: int, spec: Any, params: tuple[Param, ...], base: dict, err: _Errors) -> Baseline:
    key = ("baselines", i)
    if not isinstance(spec, dict) or "name" not in spec or not isinstance(spec.get("params"), dict):
        raise err(key, "a baseline needs `name` and a `params` mapping")
    unknown = sorted(set(spec) - {"name", "params"})
    if unknown:
        raise err(key + (unknown[0],), f"unknown key {unknown[0]!r} in a baseline", "a baseline has `name` and `params`")
    by_name = {p.name: p for p in params}
    point = {k: _baseline_number(k, v, by_name, base) for k, v in spec["params"].items()}
    for k, v in point.items():
        if k not in by_name and (k not in _TRAIN_FIELDS or k in RESERVED | GUARDED):
            raise err(key + ("params", k), f"{k!r} is not a setting a baseline can give",
                      f"use a searched parameter or one of {sorted(_TRAIN_FIELDS - RESERVED - GUARDED)}")
        if k in by_name:
            if not by_name[k].contains(v):
                raise err(key + ("params", k), f"baseline value {v!r} is outside the searched range of {k!r}",
                          "widen the range or change the baseline")
        elif base.get(k, getattr(TrainConfig(), k, object())) != v:
            raise err(key + ("params", k), f"{k!r} is not searched and the baseline's {v!r} differs from the fixed value",
                      "search it, or drop it from the baseline")
    sampled: dict[str, Any] = {}
    for p in params:
        if p.kind == "fixed":
            if p.active(sampled):
                sampled[p.name] = p.value  # a condition may rest on it
            continue
        if p.active(sampled):
            if p.name not in point:
                raise err(key + ("params",), f"baseline {spec['name']!r} gives no value for active parameter {p.name!r}")
            sampled[p.name] = point[p.name]
        elif p.name in point:
            # Never sampled at this point (its condition fails): the trial would not use it,
            # and the trial table could not name the baseline.
            conditions = ", ".join(f"{k} in {list(vs)}" for k, vs in p.when)
            raise err(key + ("params", p.name), f"baseline {spec['name']!r} sets {p.name!r}, which is searched only "
                      f"when {conditions}", f"drop {p.name} from the baseline, or meet the condition")
    return Baseline(str(spec["name"]), {k: v for k, v in point.items() if k in by_name and by_name[k].kind != "fixed"})
