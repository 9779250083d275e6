"""Ray's OptunaSearch, made safe to resume when the study is ahead of Ray's snapshot.

The study lives in ``optuna.db`` and is written at once, but Ray's experiment state
(and this searcher's state in it) is a snapshot taken between results and copied to
storage in the background, so it can trail the study. If the driver dies after a
trial finished, but before the next snapshot, the study holds that trial as COMPLETE
while the restored experiment holds it as still running. Ray then restarts the trial
from its last checkpoint and replays the evaluations after that checkpoint.
Reporting a replayed evaluation to the finished study trial raises
``UpdateFinishedTrialError`` inside Ray's controller and ends the resumed search
(seen in tests/tune/test_cluster.py's killed-driver test).

The study trial keeps the value it already has. Exact resume means the replayed
evaluation is the same one, from the same checkpoint, so nothing is lost by skipping
it. For the same reason, Optuna's warning that a replayed step "is already reported"
(the trial was still running in the study) is expected after a resume and is not
shown.

Ray stores the searcher object, class included, in the experiment's ``tuner.pkl``:
searches started before this class existed resume with Ray's own ``OptunaSearch``,
and this module's path and class name must stay importable for later resumes.

Where the study is can change between runs of one search: a search on object storage
resumed on another machine, or a local experiment directory copied elsewhere. Ray
pickles the searcher whole (its study and storage included, twice: in ``tuner.pkl`` and
in ``searcher-state-*.pkl``), and unpickling Optuna's ``RDBStorage`` opens the database
at the URL it was created with. That opened the *original* study from a copied
experiment (a resume then wrote to another search's study), and failed, or created an
empty one, on a machine without that path. ``study_location`` (used by
``tune.driver.resume_search``) says which database an unpickled storage opens now. With
``study_copies`` (object storage), every snapshot of the searcher also writes a copy of
the study beside it (``tune.study_store``).

The value the study records for a trial is its best evaluation's dev F1, the number
the trial table ranks and promotion ships, not its last (Ray's default).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tune.study_store import copy_name, copy_study, mark_study, sqlite_path

logger = logging.getLogger(__name__)

#: The name Ray gives the searcher's state file (Searcher.CKPT_FILE_TMPL, OptunaSearch's).
_STATE_MARK = "searcher-state-"
#: User attribute of a study trial added for a trial run again after it failed: the
#: number of the failed study trial (ResumableOptunaSearch._learn_rerun).
RERUN_OF = "rerun_of"


@contextmanager
def study_location(url: str) -> Iterator[None]:
    """While inside, every Optuna ``RDBStorage`` of a SQLite study that is unpickled (the
    searcher, from ``tuner.pkl`` and from its state file) opens the study at ``url``,
    whatever URL it was pickled with.

    The hook is ``RDBStorage.__setstate__``, swapped for the duration: the searcher's own
    unpickling cannot reach it, since Ray unpickles ``tuner.pkl`` itself, and searchers
    pickled by earlier nerkit and by Ray's own class must be relocated too. Only the
    driver's resume uses this, in the thread that restores the searcher.
    """
    original = optuna.storages.RDBStorage.__setstate__

    def relocated(storage: optuna.storages.RDBStorage, state: dict[str, Any]) -> None:
        if str(state.get("url", "")).startswith("sqlite:///"):
            state = {**state, "url": url}
        original(storage, state)

    optuna.storages.RDBStorage.__setstate__ = relocated
    try:
        yield
    finally:
        optuna.storages.RDBStorage.__setstate__ = original


@contextmanager
def new_trials_stored_at(experiment: str) -> Iterator[None]:
    """While inside, a search algorithm that Ray restores creates its new trials under
    ``experiment`` (a path or URI), where the search is being resumed.

    Ray's ``SearchGenerator`` keeps the experiment it was started with, storage included,
    in its saved state, and makes every new trial from it. Ray re-points the trials it
    restores at the resumed location, but not that template: resumed from a copy, new
    trials wrote their checkpoints into the original; resumed after a move, each failed
    to find its storage and ended in error. The hook is ``SearchGenerator.set_state``,
    swapped for the duration as :func:`study_location` swaps Optuna's.
    """
    import copy

    from ray.train._internal.storage import get_fs_and_path
    from ray.tune.search.search_generator import SearchGenerator

    root, _, name = experiment.rstrip("/").rpartition("/")
    fs, fs_path = get_fs_and_path(root)
    original = SearchGenerator.set_state

    def repointed(generator: SearchGenerator, state: dict[str, Any]) -> None:
        original(generator, state)
        template = getattr(generator, "_experiment", None)
        if template is None or template.spec.get("storage") is None:
            return
        storage = copy.copy(template.spec["storage"])
        storage.storage_filesystem, storage.storage_fs_path, storage.experiment_dir_name = fs, fs_path, name
        template.spec["storage"] = template.storage = storage

    SearchGenerator.set_state = repointed
    try:
        yield
    finally:
        SearchGenerator.set_state = original


class ResumableOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that leaves study trials that already finished as they are, opens
    the study where it is now after a resume, (``study_copies``) writes a copy of the
    study with each snapshot of its state, and tells the study each trial's best
    evaluation, not its last."""

    def __init__(self, *args: Any, study_copies: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._study_copies = study_copies
        self._study_copy_sha: str | None = None

    def mark_search(self, search_id: str) -> None:
        """Mark the study as search ``search_id``'s (tune.study_store), once it is set up."""
        mark_study(self._ot_study, search_id)

    def save(self, checkpoint_path: str) -> None:
        if getattr(self, "_study_copies", False):  # searchers pickled before copies existed lack it
            self._write_study_copy(checkpoint_path)
        super().save(checkpoint_path)

    def _write_study_copy(self, checkpoint_path: str) -> None:
        """Copy the study beside the state file Ray is writing: ``optuna-study-<session>.db``
        for ``[.<tmp>-]searcher-state-<session>.pkl``. The copy's hash goes into the state,
        so a copy and a state file from two snapshots are told apart (tune.state_check)."""
        source = sqlite_path(self._storage.url) if self._storage is not None else None
        if source is None or not source.is_file():
            return  # not a SQLite study (a user's own database needs no copy)
        name = os.path.basename(checkpoint_path)
        session = name.split(_STATE_MARK, 1)[1].removesuffix(".pkl") if _STATE_MARK in name else "default"
        dest = Path(checkpoint_path).parent / copy_name(session)
        copy_study(source, dest)
        self._study_copy_sha = hashlib.sha256(dest.read_bytes()).hexdigest()

    def _finished_state(self, trial_id: str) -> optuna.trial.TrialState | None:
        """The study state of ``trial_id``'s study trial if it has finished, else None."""
        number = self._ot_trials[trial_id].number
        state = next(t.state for t in self._ot_study.get_trials(deepcopy=False) if t.number == number)
        return state if state.is_finished() else None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._record_evaluation(trial_id, result)
        if trial_id in self._completed_trials:
            # A trial that ended in error, run again by --resume (resume_errored): its study
            # trial stays FAIL, since Optuna cannot reopen it, and Ray's class would log
            # every result whole as "already finished". Said once; the trial table has it.
            self._say_rerun_once(trial_id, "ended (it ended in error): its study trial stays as it ended; in "
                                           "searches started with nerkit's limiter, ")
            return
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"The reported value is ignored because this `step=",
                                        category=UserWarning)
                super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            state = self._finished_state(trial_id)
            if state == optuna.trial.TrialState.FAIL:
                # Failed in the study but running in Ray: it erred just before the driver
                # died (the snapshot still had it running), or it erred without the
                # searcher hearing and the resume failed its study trial
                # (tune.reconcile). Either way it runs again: learnt when it completes.
                self._say_rerun_once(trial_id, "failed: ")
                return
            # COMPLETE is the expected case (module doc). Any other finished state means
            # the study and Ray disagree in a way this class does not explain; the
            # search still goes on (one trial's bookkeeping is not worth the whole
            # resumed search), but loudly.
            log = logger.info if state == optuna.trial.TrialState.COMPLETE else logger.warning
            log("trial %s: its study trial is already %s (finished before the driver's last snapshot); "
                "the replayed evaluation is not reported again", trial_id, state.name if state else "finished")

    def _say_rerun_once(self, trial_id: str, how: str) -> None:
        """Say once that a trial runs again after its study trial ``how`` ended (Ray's class
        logged every result of it whole, as "already finished")."""
        told = self.__dict__.setdefault("_told_rerun", set())  # searchers pickled before it lack it
        if trial_id not in told:
            told.add(trial_id)
            logger.info("trial %s runs again on resume after its study trial %sthe value it ends with is told to the "
                        "study as a new trial with the same parameters", trial_id, how)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._completed_trials and trial_id in self._ot_trials:
            state = self._finished_state(trial_id)
            if state is not None:
                self._completed_trials.add(trial_id)
                if state != optuna.trial.TrialState.FAIL:
                    # Told before the crash: keep that value (Ray's class would log that it
                    # cannot tell a finished trial).
                    logger.info("trial %s: its study trial was already %s; kept as it is", trial_id, state.name)
                    return
                # FAIL: its study trial failed while Ray ran it (on_trial_result): a rerun.
        if trial_id in self._completed_trials and trial_id in self._ot_trials:
            # A trial run again after its study trial failed: it ended in error and --resume
            # ran it (ResumableConcurrencyLimiter passes this on; Ray's limiter drops it), or
            # as above. Ray's class would only log that it already finished.
            if result and not error:
                self._record_final(trial_id, result)
                self._learn_rerun(trial_id, result)
            return
        if result and not error and trial_id in self._ot_trials:
            # The result a scheduler stopped the trial at (ASHA at a rung or at the budget,
            # the collapse guard) reaches only this hook: Ray skips the searcher's
            # on_trial_result when its scheduler says STOP. It is an evaluation too, often
            # the best: every trial that ran its whole budget ends with one.
            self._record_final(trial_id, result)
            result = {**result, self.metric: self._best_value(trial_id, result.get(self.metric))}
        super().on_trial_complete(trial_id, result, error)

    def _record_final(self, trial_id: str, result: dict[str, Any]) -> None:
        """Keep a trial's final result as an evaluation (on_trial_complete). A trial with none
        kept before it, or a searcher pickled before it kept them, is valued from the study's
        values and this result instead (_best_value)."""
        if getattr(self, "_evaluations", {}).get(trial_id):
            self._record_evaluation(trial_id, result)

    def _learn_rerun(self, trial_id: str, result: dict[str, Any]) -> None:
        """Tell the study the value of a trial that ended in error and ran again.

        Optuna cannot reopen its FAIL study trial, so the value goes in as a new COMPLETE
        trial with the same parameters (``rerun_of`` names the failed one): TPE learns the
        configuration the trial table ranks, instead of only that it failed. Added once,
        by what the study holds, so a resume that replays the completion adds nothing.
        """
        number = self._ot_trials[trial_id].number
        trials = self._ot_study.get_trials(deepcopy=False)
        failed = next((t for t in trials if t.number == number), None)
        if failed is None or failed.state != optuna.trial.TrialState.FAIL:
            return  # COMPLETE or PRUNED: the study already has a value for it
        if any(t.user_attrs.get(RERUN_OF) == number for t in trials):
            return
        value = self._best_value(trial_id, result.get(self.metric))
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        try:
            self._ot_study.add_trial(optuna.trial.create_trial(
                params=failed.params, distributions=failed.distributions, value=float(value),
                user_attrs={**failed.user_attrs, RERUN_OF: number, "ray_trial_id": trial_id}))
        except Exception as exc:  # noqa: BLE001 - best effort: raised here, Ray would fail the finished trial
            logger.warning("trial %s ran again and ended at %s %.4f, but the study could not take it (%s: %s); the "
                           "trial table has it", trial_id, self.metric, value, type(exc).__name__, exc)
            return
        logger.info("trial %s, run again on resume, ended at %s %.4f: told to the study as a new trial with its "
                    "parameters (its first, study trial %d, stays FAIL)", trial_id, self.metric, value, number)

    def _record_evaluation(self, trial_id: str, result: dict[str, Any]) -> None:
        """Keep each evaluation's value, a later report of one replacing the earlier (an
        evaluation redone after a restore), as the trial table keeps them. The study cannot:
        Optuna keeps the first value reported for a step and ignores the rest."""
        value = result.get(self.metric)
        if "eval_index" not in result or result.get("stop_reason") == "diverged":
            return  # a diverged trial's stand-in 0 (its last evaluation's index) is no evaluation
        if not hasattr(self, "_evaluations"):
            self._evaluations: dict[str, dict[int, float]] = {}  # a searcher pickled before it kept them
        if int(result["eval_index"]) == 0:
            # Evaluation 0 again: the trial trains again from scratch (its checkpoint was
            # damaged, or it failed before its first); the abandoned run's values go, as
            # the trial table keeps only the last start (tune.ray_record.since_last_start).
            self._evaluations[trial_id] = {}
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        self._evaluations.setdefault(trial_id, {})[int(result["eval_index"])] = float(value)

    def _best_value(self, trial_id: str, last: float | None) -> float | None:
        """The trial's best evaluation, as the trial table ranks it; ``last`` (its final
        result) when it had none (it diverged before its first).

        Promotion ships a trial's best checkpoint, so TPE learns that number too: Ray's
        class told the study the last result, which scored a trial that peaked and then
        overfitted below what it ships. The values are kept with the searcher's state,
        which Ray saves with each snapshot, so a resume keeps them.
        """
        if last is None:
            return None
        pick = max if self.mode == "max" else min
        evaluations = getattr(self, "_evaluations", {}).get(trial_id)
        if evaluations:
            return pick(evaluations.values())
        # A searcher pickled before it kept them: the study's values (first reports).
        number = self._ot_trials[trial_id].number
        frozen = next(t for t in self._ot_study.get_trials(deepcopy=False) if t.number == number)
        seen = [v for v in frozen.intermediate_values.values() if v is not None and math.isfinite(v)]
        return pick([last, *seen])


class ResumableConcurrencyLimiter(ConcurrencyLimiter):
    """Ray's ``ConcurrencyLimiter`` that passes on the completion of a trial run again.

    A trial that ended in error leaves the limiter's live trials; when ``--resume`` runs
    it again (``resume_errored``), Ray's limiter drops its completion, as of a trial it
    never suggested, so the searcher never learnt how it ended. Ray pickles the limiter
    with the search: this module path and class name must stay importable.
    """

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.live_trials and trial_id in getattr(self.searcher, "_completed_trials", ()):
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        super().on_trial_complete(trial_id, result=result, error=error)
