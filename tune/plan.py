"""A search's plan: everything resolved before Ray starts, and what ``search.json`` records.

The settings (command line), the space (its YAML, with the command line's budget) and
the base TrainConfig every trial starts from; a resume rebuilds the same plan from the
record, never from the files again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from nerkit.config import TrainConfig
from nerkit.versions import package_versions
from tune.settings import SearchSettings
from tune.space import SearchSpace
from tune.space_checks import evals_for_grace, first_evaluation_after_grace
from tune.space_file import load_space


@dataclass(frozen=True)
class SearchPlan:
    """Everything resolved before Ray starts: the whole record of a search."""

    settings: SearchSettings
    space: SearchSpace
    base: TrainConfig

    def to_record(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "space": self.space.to_dict(),
            "base_config": self.base.to_dict(),
            "optuna_storage": self.settings.optuna_url(),
            # Marks this search's Optuna study, so no other study is taken for it (tune.study_store).
            "search_id": uuid.uuid4().hex,
            "versions": package_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def plan_search(settings: SearchSettings) -> SearchPlan:
    if settings.gpus_per_trial > 1:
        # A trial trains on one device (no data parallelism): more would sit reserved and
        # idle. Refused for new searches only: an earlier one that asked for more resumes.
        raise ValueError(f"gpus_per_trial is {settings.gpus_per_trial:g}, but a trial trains on one GPU: give at "
                         "most 1 (0.5 runs two trials per GPU)")
    space = load_space(settings.space)
    grace = settings.grace_epochs or space.budget.grace_epochs
    budget = settings.max_epochs or space.budget.max_epochs
    if (settings.max_epochs or settings.grace_epochs) and grace > budget:
        # Budget's own message names YAML keys; the user typed flags.
        g = f"--grace-epochs {grace:g}" if settings.grace_epochs else f"the space's grace period, {grace:g}"
        m = f"--max-epochs {budget:g}" if settings.max_epochs else f"the space's budget, {budget:g} epochs"
        fix = (f"lower --grace-epochs to {budget:g} or less" if settings.grace_epochs
               else f"pass --grace-epochs {budget:g} or less too")
        raise ValueError(f"{g} is above {m} ({settings.space}): ASHA stops no trial before its grace period, "
                         f"so it must fit in the budget; {fix}" + ("" if settings.max_epochs else
                                                                   f", or raise --max-epochs to {grace:g}"))
    space = space.with_budget(
        max_epochs=settings.max_epochs, grace_epochs=settings.grace_epochs,
        reduction_factor=settings.reduction_factor,
    )
    base = TrainConfig().with_overrides(
        **space.base, model=settings.model, max_length=settings.max_length,
        data=settings.data, epochs=space.budget.max_epochs,
        # The trials' `collapsed` flag (history column, warnings) at the guard's threshold:
        # a trial the guard stopped must not read collapsed=False at every evaluation.
        collapse_eps=space.guard.eps,
    )
    _check_first_rung(space, base, settings)
    return SearchPlan(settings, space, base)


def _check_first_rung(space: SearchSpace, base: TrainConfig, settings: SearchSettings) -> None:
    """Refuse a --grace-epochs shorter than the trials' first evaluation (ASHA would judge its
    first rung there instead). The space file's own grace period was checked at load, at its
    line, and --max-epochs can only bring the first evaluation earlier."""
    if not settings.grace_epochs:
        return
    first = first_evaluation_after_grace(settings.grace_epochs, space.budget.max_epochs, base, space.params)
    if first is None:
        return
    raise ValueError(
        f"--grace-epochs is {settings.grace_epochs:g}, but trials evaluate first at epoch {first:g} "
        f"(evals_per_epoch {base.evals_per_epoch}), so ASHA would judge its first rung there, not at the grace "
        f"period; set base.evals_per_epoch: {evals_for_grace(settings.grace_epochs)} or more in the space so trials "
        f"evaluate by then, or raise the grace period to {first:g}")


def plan_from_record(record: dict[str, Any]) -> SearchPlan:
    """Rebuild the plan of an existing search from its ``search.json``."""
    space = SearchSpace.from_dict(record["space"])
    return SearchPlan(SearchSettings.from_dict(record["settings"]), space,
                      TrainConfig.from_dict(record["base_config"]))
