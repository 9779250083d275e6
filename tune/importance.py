"""Parameter importances of a search, from its trial table.

Each finished trial (completed, pruned by ASHA, or stopped by the collapse guard)
counts with its **best dev F1**: the number the trial table, the report's parameter
scatter and its best-trial section use. The Optuna study is not read for them: it
holds the same best values only for searches run since the searcher recorded them
(tune.searcher; before, Ray's searcher recorded each trial's *last* result, a diverged
trial's stand-in 0 included), and the table is what the rest of the report reads.
Errored, diverged and unended trials are
left out; so are parameters that took one value among the trials used (nothing to
attribute to them). Optuna's default evaluator computes the importances on an
in-memory study built from these rows. Too few trials, or scores that do not vary,
give ``None`` and a note saying why: a report shows the note instead of failing.
"""

from __future__ import annotations

import math
import warnings

#: Fewer finished trials than this cannot rank parameters meaningfully.
MIN_COMPLETE_TRIALS = 3
#: PED-ANOVA (Optuna's default evaluator) compares the top share of trials with all of
#: them. At its default share, 10%, the top group of a search of under 20 trials is one
#: trial, and the ranking did not depend on the other trials' scores at all; the share
#: is raised so the group holds at least MIN_TOP_TRIALS.
DEFAULT_TOP_SHARE = 0.1
MIN_TOP_TRIALS = 2
#: Below this many trials in the top group (Optuna's guidance), the ranking is a hint.
RELIABLE_TOP_TRIALS = 5
#: The stop reasons of trials whose best dev F1 is a real score of their config.
USED_REASONS = ("completed", "asha", "collapsed")


def param_importances(tables) -> tuple[dict[str, float] | None, list[str]]:
    """``({param: importance}, notes)`` for the search in ``tables`` (tune.tables.collect).

    Returns:
        Importances normalised to sum to 1 (``None`` when they cannot be computed) and
        human-readable notes (why not, what was used, the evaluator's warnings).
    """
    import optuna

    from tune.space import Param

    space = {p["name"]: Param.from_dict(p) for p in tables.record["space"]["params"] if p["kind"] != "fixed"}
    rows = [t for t in tables.trials if t.get("stop_reason") in USED_REASONS and t.get("best_dev_f1") is not None]
    if len(rows) < MIN_COMPLETE_TRIALS:
        return None, [f"{len(rows)} finished trial(s) with a dev F1 (completed, pruned or stopped by the guard); "
                      f"parameter importances need at least {MIN_COMPLETE_TRIALS}"]
    values = {name: {repr(r.get(f"param_{name}")) for r in rows if r.get(f"param_{name}") is not None}
              for name in space}
    varied = [name for name in space if len(values[name]) > 1]
    constant = sorted(name for name in space if len(values[name]) == 1)
    if not varied:
        return None, ["no searched parameter took more than one value among the finished trials: nothing to rank"]
    scores = {r["best_dev_f1"] for r in rows}
    if len(scores) == 1:
        return None, [f"every finished trial scored best dev F1 {next(iter(scores)):.4f}: nothing for the "
                      "parameters to explain"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for r in rows:
        params = {name: r[f"param_{name}"] for name in varied if r.get(f"param_{name}") is not None}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={name: space[name].distribution() for name in params},
            value=float(r["best_dev_f1"])))
    top_share = max(DEFAULT_TOP_SHARE, MIN_TOP_TRIALS / len(rows))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=top_share)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError) as exc:
            return None, [f"Optuna could not compute importances: {exc}"]
    notes = sorted({str(w.message) for w in caught})
    top = math.ceil(top_share * len(rows))
    if top < RELIABLE_TOP_TRIALS:
        notes.append(f"a rough ranking: PED-ANOVA compares the top {top} of {len(rows)} trials with all of them, "
                     f"and reads reliably from {RELIABLE_TOP_TRIALS} in that group (about "
                     f"{math.ceil(RELIABLE_TOP_TRIALS / DEFAULT_TOP_SHARE)} finished trials); read it as a hint")
    notes.append(f"computed by Optuna from the best dev F1 of {len(rows)} finished trials (errored and diverged "
                 "ones left out; a parameter searched only in some trials, like a conditional one, is ranked on "
                 "those)" + (f"; not ranked, one value in every trial: {', '.join(constant)}" if constant else ""))
    return {k: float(v) for k, v in importances.items()}, notes
