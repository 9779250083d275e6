"""Checks of a search space across its parameters (``tune.space_file`` runs them).

A value valid alone can be refused with another (``entity_o_ratio`` replaces
``o_weight``), and a condition can name a parameter that cannot take its value: both
would fail inside every trial on the cluster, so a space is refused at load instead.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from nerkit.config import TrainConfig
from tune.space import Param

if TYPE_CHECKING:
    from tune.space_file import SpaceErrors


def check_pairs(params: tuple[Param, ...], base: dict, err: SpaceErrors) -> None:
    """Every two parameters at their checked values, together, wherever both can be active:
    settings valid alone can exclude each other (``entity_o_ratio`` replaces ``o_weight``),
    and would fail inside every trial that drew both. The parameters their conditions
    depend on (transitively) take each of their values, and only assignments under which
    every one of them is itself active count."""
    by_name = {p.name: p for p in params}
    for i, p in enumerate(params):
        for q in params[i + 1:]:
            context = [c for c in _conditioning(p, q, by_name) if c.name not in (p.name, q.name)]
            for _, v in values_to_check(p):
                for field_name, w in values_to_check(q):
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


def values_to_check(p: Param) -> list[tuple[str, Any]]:
    """The values of ``p`` to validate: every choice, the fixed value, both range ends."""
    if p.kind == "choice":
        return [("values", v) for v in p.values or ()]
    if p.kind == "fixed":
        return [("value", p.value)]
    return [("low", p.low), ("high", p.high)]


def check_conditions(params: tuple[Param, ...], err: SpaceErrors) -> None:
    seen: dict[str, Param] = {}
    # What each parameter needs to be active, its parents' needs included: a parameter
    # whose needs exclude each other (``when: {loss: []}``, or ``loss: ce`` under a
    # parent active only for ``loss: focal``) would be accepted and never searched.
    needs: dict[str, dict[str, list]] = {}
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
        mine: dict[str, list] = {}
        for other, values in p.when:
            for name, allowed in [*needs[other].items(), (other, list(values))]:
                mine[name] = [v for v in mine.get(name, allowed) if v in allowed]
        empty = sorted(name for name, allowed in mine.items() if not allowed)
        if empty:
            chain = "; ".join(f"{q.name} needs " + ", ".join(f"{k} in {list(vs)}" for k, vs in q.when)
                              for q in [*(seen[k] for k, _ in p.when if seen[k].when), p])
            raise err(("params", p.name, "when"), f"{p.name} can never be active: no value of {empty[0]!r} meets "
                      f"every condition it rests on ({chain})", "make the conditions agree, or remove the parameter")
        needs[p.name] = mine
        seen[p.name] = p


def first_evaluation_after_grace(grace_epochs: float, max_epochs: float, base: TrainConfig,
                                 params: tuple[Param, ...]) -> float | None:
    """The epoch of the trials' first evaluation when it comes after ASHA's grace period
    (its first rung, which ASHA would then judge there instead), else None. ``base`` is
    the space's base config resolved, so TrainConfig's own defaults apply.

    None too when that depends on what a trial draws: evaluations every N steps (the
    batch size sets the epoch) or a searched evaluation setting."""
    if base.eval_every_steps is not None or evaluations_move_with_the_draw(base, params):
        return None
    first = min(1 / base.evals_per_epoch, max_epochs)
    return first if grace_epochs < first - 1e-9 else None


def evaluations_move_with_the_draw(base: TrainConfig, params: tuple[Param, ...]) -> str | None:
    """Why the epochs of a trial's evaluations depend on what it draws, or None when every
    trial evaluates at the same epochs: evaluations every N steps with a searched batch size
    (a batch of 8 reaches step N at a quarter of the epoch a batch of 32 does), or a searched
    evaluation setting."""
    searched = {p.name for p in params}
    if searched & {"eval_every_steps", "evals_per_epoch"}:
        return f"{sorted(searched & {'eval_every_steps', 'evals_per_epoch'})[0]} is searched"
    if base.eval_every_steps is not None and "batch_size" in searched:
        return f"trials evaluate every {base.eval_every_steps} steps and batch_size is searched"
    return None


def evals_for_grace(grace_epochs: float) -> int:
    """The fewest evaluations per epoch that put one at or before ``grace_epochs``."""
    return math.ceil(1 / grace_epochs - 1e-9)
