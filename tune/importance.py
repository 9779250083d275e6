"""Parameter importances of a search, from its Optuna study.

The study lives where ``search.json`` says (``optuna_storage``) under the search's
name. Importances need a few finished trials; with fewer, or when the study cannot be
read (a remote search whose driver cache is elsewhere), the answer is ``None`` and a
note that says why — a report shows the note instead of failing.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tune.settings import OPTUNA_FILE, is_remote

#: Fewer complete trials than this cannot rank parameters meaningfully.
MIN_COMPLETE_TRIALS = 3


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (``None`` for other databases)."""
    prefix = "sqlite:///"
    return Path(url[len(prefix):]) if url.startswith(prefix) else None


def param_importances(
    record: dict[str, Any], experiment_path: str | None = None,
) -> tuple[dict[str, float] | None, list[str]]:
    """``({param: importance}, notes)`` for the search described by ``record`` (search.json).

    Args:
        record: The experiment's ``search.json`` (``TrialTables.record``).
        experiment_path: Where the experiment is now. A search on local storage keeps its
            study in ``<experiment>/optuna.db``: read there, not at the path recorded when
            it ran (a moved or copied search would otherwise read another one's study).

    Returns:
        Importances normalised to sum to 1 (``None`` when they cannot be computed) and
        human-readable notes (why not, or the evaluator's warnings).
    """
    import optuna

    url, name = record.get("optuna_storage", ""), record["settings"]["name"]
    if experiment_path is not None and not is_remote(experiment_path):
        url = f"sqlite:///{Path(experiment_path) / OPTUNA_FILE}"
    db = _sqlite_file(url)
    if not url or (db is not None and not db.is_file()):
        # Opening a missing SQLite file would create an empty database: check first.
        return None, [f"no Optuna study at {url or '(not recorded)'}; importances need the "
                      "search driver's study database"]
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
