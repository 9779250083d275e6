"""Parameter importances of a search, from its Optuna study.

The study is found as ``tune.study_store.study_for_reading`` says: the experiment's own
``optuna.db`` on local storage; with object storage the live study when this machine
ran the search, else the copy uploaded with Ray's last snapshot. Importances need a
few finished trials; with fewer, or when no study is found, the answer is ``None`` and
a note that says why — a report shows the note instead of failing.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from tune.settings import experiment_path as path_of
from tune.settings import is_remote
from tune.study_store import live_study_url, study_for_reading

#: Fewer complete trials than this cannot rank parameters meaningfully.
MIN_COMPLETE_TRIALS = 3


def param_importances(
    record: dict[str, Any], experiment_path: str | None = None,
) -> tuple[dict[str, float] | None, list[str]]:
    """``({param: importance}, notes)`` for the search described by ``record`` (search.json).

    Args:
        record: The experiment's ``search.json`` (``TrialTables.record``).
        experiment_path: Where the experiment is now. A search on local storage keeps its
            study in ``<experiment>/optuna.db``: read there, not at the path recorded when
            it ran (a moved or copied search would otherwise read another one's study).
            ``None``: the path its settings give.

    Returns:
        Importances normalised to sum to 1 (``None`` when they cannot be computed) and
        human-readable notes (why not, or the evaluator's warnings).
    """
    name = record["settings"]["name"]
    experiment = experiment_path or path_of(name, record["settings"]["storage"])
    with tempfile.TemporaryDirectory(prefix="nerkit-study-") as workdir:
        url = study_for_reading(experiment, record, Path(workdir))
        if url is None:
            where = live_study_url(experiment) + (" nor a copy on storage" if is_remote(experiment) else "")
            return None, [f"no Optuna study at {where}; importances need the search's study database"]
        return _importances(url, name)


def _importances(url: str, name: str) -> tuple[dict[str, float] | None, list[str]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return None, [f"the Optuna storage {url} has no study named {name!r}"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < MIN_COMPLETE_TRIALS:
        return None, [f"{len(complete)} complete trial(s) in the Optuna study; parameter "
                      f"importances need at least {MIN_COMPLETE_TRIALS}"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            values = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError) as exc:
            return None, [f"Optuna could not compute importances: {exc}"]
    notes = sorted({str(w.message) for w in caught})
    notes.append(f"computed by Optuna ({len(complete)} complete trials; parameters sampled in "
                 "only some trials, like conditional ones, may be ranked on few points)")
    return {k: float(v) for k, v in values.items()}, notes
