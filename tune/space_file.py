"""Reading a search space YAML into a :class:`tune.space.SearchSpace`, validated.

Every error names the file, the line, the key and the fix (``SpaceErrors``). What a
space may hold is in ``tune.space``'s module doc and search_spaces/default.yaml.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path
from typing import Any

from nerkit.config import TrainConfig, parse_number, setting_kind
from nerkit.yaml_lines import load_with_lines
from tune.guard import GuardConfig
from tune.space import (DATA_SHAPING, GUARDED, KINDS, NON_NEGATIVE, POSITIVE, RESERVED, SECTIONS, Baseline, Budget,
                        Param, SearchSpace)
from tune.space_checks import (check_conditions, check_pairs, evals_for_grace, evaluations_move_with_the_draw,
                               first_evaluation_after_grace, values_to_check)


class SpaceErrors:
    """Builds the ValueError for a problem at a key of the file: ``path:line: key: problem. Fix: fix``."""

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


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search space file (errors name file, line, key and fix)."""
    path = Path(path)
    raw, lines = load_with_lines(path, "a search space YAML (see search_spaces/)")
    err = SpaceErrors(path, lines)
    if not isinstance(raw, dict):
        raise err((), f"expected a mapping with sections {sorted(SECTIONS)}")
    for key in raw:
        if key not in SECTIONS:
            raise err((key,), f"unknown section {key!r}", f"use one of {sorted(SECTIONS)}")
    base = _parse_base(_given(raw, "base", {}), err)
    raw_params = _given(raw, "params", {})
    if not isinstance(raw_params, dict):
        raise err(("params",), f"expected a mapping of parameter name to distribution, got {type(raw_params).__name__}",
                  "write e.g. `learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-4}`")
    params = tuple(_parse_param(name, spec, err) for name, spec in raw_params.items())
    if not params:
        raise err(("params",), "no parameters to search", "add at least one entry under params:")
    check_conditions(params, err)
    overlap = sorted(set(base) & {p.name for p in params})
    if overlap:
        raise err(("base", overlap[0]), f"{overlap} is both fixed in base and searched in params",
                  "keep it in one section")
    budget_raw = _given(raw, "budget", {})
    if isinstance(budget_raw, dict):  # `5e-1` (no dot) is a YAML string; budgets are numbers
        budget_raw = {k: parse_number(v) for k, v in budget_raw.items()}
    budget = _section(Budget, budget_raw, ("budget",), err)
    guard_raw = _given(raw, "collapse_guard", {})
    if guard_raw is False:
        # YAML reads `collapse_guard: off` as false, which would have kept the guard on.
        raise err(("collapse_guard",), "collapse_guard is false, but must be a mapping of guard settings",
                  "write `collapse_guard: {enabled: false}` to turn the guard off")
    if isinstance(guard_raw, dict):
        # YAML 1.1 reads `1e-2` (no dot) as a string; the guard's thresholds are numbers.
        guard_raw = {k: parse_number(v) if k in ("eps", "min_rise") else v for k, v in guard_raw.items()}
    guard = _section(GuardConfig, guard_raw, ("collapse_guard",), err)
    raw_baselines = _given(raw, "baselines", [])
    if not isinstance(raw_baselines, list):
        raise err(("baselines",), f"baselines is {raw_baselines!r}, but must be a list",
                  "write `baselines: [{name: team-recipe, params: {...}}]`, or leave the section out")
    baselines = tuple(_parse_baseline(i, b, params, base, err) for i, b in enumerate(raw_baselines))
    names = [b.name for b in baselines]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise err(("baselines",), f"baseline name {dup!r} is used twice", "give every baseline its own name")
    description = _given(raw, "description", "")
    space = SearchSpace(str(path), params, base, budget, guard, baselines, str(description))
    # The base config must itself be valid (e.g. entity_o_ratio with o_weight != 1).
    try:
        resolved = TrainConfig().with_overrides(**base)
    except (ValueError, TypeError) as exc:
        # The message starts with the setting's name ("smoothing is 3, ..."): its own line.
        named = next((k for k in base if str(exc).startswith((f"{k} is ", f"{k}="))), None)
        raise err(("base",) + ((named,) if named else ()), str(exc),
                  "change it under base:" if named else "") from None
    first = first_evaluation_after_grace(budget.grace_epochs, budget.max_epochs, resolved, params)
    if first is not None:
        raise err(("budget", "grace_epochs"),
                  f"grace_epochs is {budget.grace_epochs:g}, but trials evaluate first at epoch {first:g} "
                  f"(evals_per_epoch {resolved.evals_per_epoch}), so ASHA would judge its first rung there",
                  f"set `evals_per_epoch: {evals_for_grace(budget.grace_epochs)}` (or more) under base, or "
                  f"grace_epochs: {first:g}")
    moving = evaluations_move_with_the_draw(resolved, params) if guard.enabled else None
    if moving:
        # The guard counts grace and patience in evaluations: with evaluations at other epochs
        # in each trial, "the first epoch is never judged" held for some trials only, and a
        # trial with a small batch could be stopped inside its first epoch.
        raise err(("collapse_guard",), f"the collapse guard counts grace and patience in evaluations, but {moving}, "
                  "so they would fall at different epochs in each trial",
                  "evaluate by epochs (`evals_per_epoch` under base, not searched), fix the batch size, or set "
                  "`enabled: false` under collapse_guard")
    # So must every value a trial can get: a bad choice ('focall') or a float batch size
    # would otherwise fail inside every trial on the cluster, retries included.
    for p in params:
        for field_name, value in values_to_check(p):
            try:
                TrainConfig().with_overrides(**{**base, p.name: value})
            except (ValueError, TypeError) as exc:
                raise err(("params", p.name, field_name), f"{p.name} = {value!r}: {exc}") from None
    check_pairs(params, base, err)
    for i, b in enumerate(baselines):
        try:
            TrainConfig().with_overrides(**{**base, **b.params})
        except (ValueError, TypeError) as exc:
            raise err(("baselines", i), f"baseline {b.name!r}: {exc}") from None
    return space


def _given(raw: dict, section: str, empty: Any) -> Any:
    """A section's value; ``empty`` where it is left out or left blank (``base:`` alone).
    Not ``or``: a falsy value (``base: false``, ``budget: 0``) is an error to report,
    not the defaults."""
    value = raw.get(section)
    return empty if value is None else value


def _parse_base(base: Any, err: SpaceErrors) -> dict[str, Any]:
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


def _parse_param(name: str, spec: Any, err: SpaceErrors) -> Param:
    key = ("params", name)
    if name not in _TRAIN_FIELDS or name in RESERVED | GUARDED:
        allowed = sorted(_TRAIN_FIELDS - RESERVED - DATA_SHAPING - GUARDED)
        # Only for a name that is no setting: a reserved one is spelt right, and its look-alike
        # (max_length: max_weight) is another setting.
        close = difflib.get_close_matches(name, allowed, n=1) if name not in _TRAIN_FIELDS else []
        raise err(key, f"unknown or reserved training setting {name!r}",
                  (f"did you mean {close[0]!r}? " if close else "") + f"use one of {allowed}")
    if name in DATA_SHAPING:
        raise err(key, f"{name} changes the tokenised data, which a search prepares once for all its trials, so "
                  "it cannot be searched", "set it under base: (one value for every trial), and run a second "
                  "search with the other value to compare them")
    if not isinstance(spec, dict):
        spec = {"type": "fixed", "value": spec}  # `name: 0.5` is shorthand for fixed
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in KINDS:
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
            raise err(key + ("low",), f"low is {low}, but a loguniform range must be > 0",
                      (f"start it above 0 (e.g. {high / 1000:g}), or " if high > 0 else "")
                      + f"use type: uniform to include {low}")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise err(key, f"int bounds must be integers, got low={low}, high={high}")
        step = spec.get("step")
        if step is not None and (not isinstance(step, (int, float)) or isinstance(step, bool) or not step > 0
                                 or (kind == "int" and not float(step).is_integer())):
            raise err(key + ("step",), f"step is {step!r}, but must be a number > 0"
                      + (" and an integer" if kind == "int" else ""))
        if kind == "int" and step is not None and (high - low) % step:
            # Optuna narrows the range to the steps that fit, without a word.
            raise err(key + ("step",), f"step {step} does not divide the range {low}..{high}: {high} would never "
                      "be drawn", f"set high to {low + (high - low) // step * step}, or pick a step that divides it")
        _check_sign(name, low, key + ("low",), err)
        return Param(name, kind, float(low) if kind != "int" else int(low),
                     float(high) if kind != "int" else int(high), spec.get("step"), when=when)
    if kind == "choice":
        values = spec["values"]
        if isinstance(values, list) and name in _FLOAT_FIELDS:
            values = [parse_number(v) for v in values]
        if not isinstance(values, list) or not values:
            raise err(key + ("values",), f"values is {values!r}, but must be a non-empty list")
        # Equal values count once whatever their spelling (1 and 1.0): Optuna would draw
        # that value twice as often. repr keeps True apart from 1 and unhashables hashable.
        if len({repr(float(v)) if _is_number(v) else repr(v) for v in values}) != len(values):
            raise err(key + ("values",), f"values {values} has duplicates")
        if len(values) == 1:
            # Nothing to draw: the search's summary and tables would call it searched.
            flow = ", ".join(f"{k}: [{', '.join(map(str, v))}]" if isinstance(v, list) else f"{k}: {v}"
                             for k, v in raw_when.items())  # as YAML writes it, not as Python does
            fixed = (f"{name}: {{type: fixed, value: {values[0]}, when: {{{flow}}}}}" if raw_when
                     else f"{name}: {values[0]}")
            raise err(key + ("values",), f"values {values} has one value, so {name} is not searched",
                      f"write `{fixed}` (one value for the trials it applies to), or give more values")
        for v in values:
            _check_sign(name, v, key + ("values",), err)
        return Param(name, kind, values=tuple(values), when=when)
    value = parse_number(spec["value"]) if name in _FLOAT_FIELDS else spec["value"]
    _check_sign(name, value, key + ("value",), err)
    return Param(name, kind, value=value, when=when)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_sign(name: str, value: Any, key: tuple, err: SpaceErrors) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if name in POSITIVE and not value > 0:
        raise err(key, f"{name} is {value}, but must be > 0", "weights and rates cannot be zero or negative")
    if name in NON_NEGATIVE and value < 0:
        raise err(key, f"{name} is {value}, but must be >= 0")


def _section(cls, values: Any, key: tuple, err: SpaceErrors):
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


def _parse_baseline(i: int, spec: Any, params: tuple[Param, ...], base: dict, err: SpaceErrors) -> Baseline:
    key = ("baselines", i)
    if not isinstance(spec, dict) or "name" not in spec or not isinstance(spec.get("params"), dict):
        raise err(key, "a baseline needs `name` and a `params` mapping")
    unknown = sorted(set(spec) - {"name", "params"}, key=str)  # a YAML key may be a number
    if unknown:
        raise err(key + (unknown[0],), f"unknown key {unknown[0]!r} in a baseline", "a baseline has `name` and `params`")
    if not isinstance(spec["name"], str) or not spec["name"].strip():
        # An empty name reads as "no baseline" in the trial table; `name:` alone as 'None'.
        raise err(key + ("name",), f"name is {spec['name']!r}, but must be a non-empty text",
                  "name the baseline, e.g. `name: team-recipe`")
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
