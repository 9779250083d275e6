"""The search driver: run a new search or resume an interrupted one.

Ray Tune's ``Tuner`` runs the trials; Optuna's TPE (through ``OptunaSearch``)
proposes them; ``GuardedASHA`` prunes them. Everything a resume needs — settings,
space, base config — is written to ``search.json`` in the experiment directory
before the first trial starts, and Ray keeps the searcher's state beside it (the
scheduler's it does not keep: ``GuardedASHA`` rebuilds it from the trials' result
logs), so ``resume_search`` continues with the same state: no trial lost, none run
twice.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from nerkit.alignment import check_tokenizer_source
from nerkit.config import TrainConfig
from nerkit.data import TEST_SPLIT_FIX, NerDataset, load_dataset
from nerkit.features import PreparedData, prepare_loaded
from nerkit.model import model_fingerprint, resolve_model
from tune.cluster_checks import (check_storage_on_every_node, default_concurrency, warn_if_autoscaling_would_starve,
                                 warn_if_data_is_temporary, warn_if_gpus_unused)
from tune.driver_lock import LOCK_FILE, driver_lock
from tune.driver_process import sigterm_stops_gracefully, snapshot_period
from tune.plan import SearchPlan, plan_from_record, plan_search
from tune.progress import SearchProgress
from tune.ray_record import reported_trial_directories
from tune.ray_connect import check_address, init_ray_for, joined_cluster, signals_held
from tune.reconcile import fail_orphaned_trials, study_and_ray_trials, unrecorded_finished_trials
from tune.result_logs import ResultLogUpload
from tune.retention import CheckpointRetention
from tune.scheduler import METRIC, GuardedASHA
from tune.settings import (SETTINGS_FILE, SearchSettings, check_same_data, check_same_model, experiment_path,
                           is_remote, planned_baselines, read_settings, storage_root)
from tune.space import Sampler
from tune.state_backup import StateBackup
from tune.state_restore import restore_if_broken
from tune.storage import exists, join, write_text
from tune.study_choice import study_for_resume
from tune.study_store import make_room_for_new_study, set_aside_unstarted_study
from tune.trainable import run_trial

logger = logging.getLogger(__name__)


def trial_dirname(trial) -> str:
    """Short trial directory names (Ray's default embeds every parameter value)."""
    return f"trial_{trial.trial_id}"


def trial_resources(settings: SearchSettings) -> dict[str, float]:
    """What Ray reserves for each trial: its CPUs and, when asked, its (share of a) GPU."""
    resources = {"cpu": settings.cpus_per_trial}
    if settings.gpus_per_trial > 0:
        resources["gpu"] = settings.gpus_per_trial
    return resources


def _trainable(plan: SearchPlan, prepared: PreparedData):
    from ray import tune

    # with_parameters puts the tokenised data in Ray's object store once; every
    # trial on every node reads it from there instead of re-tokenising.
    fn = tune.with_parameters(run_trial, base=plan.base.to_dict(), prepared=prepared,
                              checkpoint_every=plan.settings.checkpoint_every)
    return tune.with_resources(fn, trial_resources(plan.settings))


def _searcher(plan: SearchPlan, search_id: str):
    import optuna

    from tune.searcher import ResumableConcurrencyLimiter, ResumableOptunaSearch

    s = plan.settings
    baselines = [dict(b.params) for b in planned_baselines(plan.space.baselines, s.baselines, s.trials)]
    # constant_liar: running trials count as (pessimistic) observations, so parallel
    # workers do not all sample the same promising point; multivariate models the
    # interactions (o_weight × entity_boost) that matter most here.
    sampler = optuna.samplers.TPESampler(
        seed=s.seed, multivariate=True, constant_liar=True,
        n_startup_trials=s.tpe_startup_trials,
    )
    searcher = ResumableOptunaSearch(
        space=Sampler(plan.space), metric=METRIC, mode="max", sampler=sampler,
        points_to_evaluate=baselines or None, study_name=s.name,
        storage=optuna.storages.RDBStorage(s.optuna_url()), study_copies=is_remote(s.storage),
    )
    searcher.mark_search(search_id)  # set up (and created) by the constructor: the space is given
    limit = s.max_concurrent or default_concurrency(s)
    return ResumableConcurrencyLimiter(searcher, max_concurrent=limit)


def _run_config(plan: SearchPlan, callbacks: list | None):
    from ray import tune

    s = plan.settings
    return tune.RunConfig(
        name=s.name,
        storage_path=s.storage_root,
        # Ray keeps every checkpoint and ranks them by dev F1; CheckpointRetention
        # deletes the superseded ones only once Ray's snapshot on storage has moved
        # past them (Ray's own num_to_keep deletes before that: tune.retention).
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=None, checkpoint_score_attribute=METRIC, checkpoint_score_order="max"
        ),
        failure_config=tune.FailureConfig(max_failures=s.max_failures),
        callbacks=callbacks,
        verbose=0,
    )


def run_search(settings: SearchSettings, address: str | None = None, callbacks: Sequence[Any] = ()):
    """Start a new search; returns Ray's ``ResultGrid``.

    ``callbacks`` are extra Ray Tune callbacks (an experiment logger, say); they are
    saved with the search and come back on resume.
    """
    plan = plan_search(settings)
    exp = settings.experiment_path
    with driver_lock(exp, settings.name):
        try:
            if exists(join(exp, SETTINGS_FILE)):
                raise ValueError(_already_there(settings, exp))
            # The records before Ray's start: a bad path or record is reported at once; an
            # address nerkit cannot use, before both.
            check_address(address)
            dataset = load_dataset(plan.base.data)
            _warn_if_no_test_split(dataset)
            prepared = _tokenise_while(lambda: init_ray_for(settings, address), dataset, plan.base)
            # Every trial's config (rows and checkpoints alike) names the data it ran on,
            # so `nerkit train --config` with it refuses data changed since.
            plan = replace(plan, base=plan.base.with_overrides(
                data=replace(plan.base.data, fingerprint=prepared.fingerprint)))
            check_storage_on_every_node(exp)
            warn_if_gpus_unused(settings)
            warn_if_data_is_temporary(plan.base.data)
            warn_if_autoscaling_would_starve(settings, joined_cluster())
            make_room_for_new_study(exp)
            # What --resume and promotion check the data against (tune.settings.check_same_data).
            record = {**plan.to_record(), "data_fingerprint": prepared.fingerprint,
                      "model_fingerprint": model_fingerprint(plan.base.model)}
            write_text(join(exp, SETTINGS_FILE), json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        except BaseException:
            # Still holding the lock: no other driver can be starting in this directory.
            _remove_if_never_started(exp)
            raise
        return _start(plan, record, prepared, callbacks)


def _already_there(settings: SearchSettings, exp: str) -> str:
    """Why a new search cannot take this name, and the way on: a search that has ended
    has nothing to resume (a resume would only print its summary again)."""
    from tune.summary import unfinished
    from tune.tables import collect

    try:
        left = sum(unfinished(collect(exp)).values())
    except Exception:  # noqa: BLE001 - it only picks this message's words; resume says what is wrong
        left = None  # not readable as a search with trials (an old or edited record)
    if left == 0:
        return (f"search {settings.name!r} already exists at {exp} and has ended (every trial did); read it with "
                f"`nerkit trials {settings.name} --storage {settings.storage_root}`, or pick another --name for a "
                "new search")
    return (f"search {settings.name!r} already exists at {exp}; continue it with "
            f"`nerkit search --resume {settings.name} --storage {settings.storage_root}` or pick another --name")


def _warn_if_no_test_split(dataset: NerDataset) -> None:
    """Say before the search runs what promotion would say only after it: without a test
    split no model of this search can be promoted (tune.scoring.evaluate_test)."""
    if not dataset.split("test"):
        logger.warning("the data has no test split, so `nerkit promote` will refuse every model of this search (it "
                       "scores the chosen one on test before publishing); to promote from it, stop now and %s",
                       TEST_SPLIT_FIX)


def _tokenise_while(start_ray: Callable[[], None], dataset: NerDataset, base: TrainConfig) -> PreparedData:
    """``dataset`` tokenised for ``base``'s model while ``start_ray`` runs.

    Loading the tokenizer imports transformers and torch, about as long as a local Ray's
    start; side by side, that part of a search's start went from 10.6 to 8.6 s on 2 cores
    (benchmarks/RESULTS.md §3, update 15). Ray's start keeps the main thread (it sets
    signal handlers there). A model path that does not exist is still reported before
    Ray starts; a model that will not load, or a max_length it cannot take, once Ray is up
    (the records were checked before this).
    """
    check_tokenizer_source(resolve_model(base.model))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerkit-tokenise") as pool:
        # Ctrl-C or SIGTERM while Ray starts waits until it is up (tune.ray_connect.signals_held).
        with signals_held():
            prepared = pool.submit(prepare_loaded, dataset, base.model, base.max_length, base.label_all_subwords)
            start_ray()  # if it fails, leaving the block waits for the tokenizer, then raises this
        return prepared.result()


def _remove_if_never_started(experiment: str) -> None:
    """A local experiment directory that holds nothing but the driver lock (the search
    failed before writing search.json: bad data, no Ray) goes, so the name stays free and
    `nerkit trials` lists no empty search."""
    path = Path(experiment)
    if not is_remote(experiment) and path.is_dir() and {p.name for p in path.iterdir()} <= {LOCK_FILE}:
        shutil.rmtree(path, ignore_errors=True)


def _start(plan: SearchPlan, record: dict[str, Any], prepared: PreparedData, callbacks: Sequence[Any]):
    """Run the search of ``plan`` from its first trial (search.json already written)."""
    from ray import tune

    settings = plan.settings
    scheduler = GuardedASHA(
        plan.space.guard, max_t=plan.space.budget.max_epochs,
        grace_period=plan.space.budget.grace_epochs, reduction_factor=plan.space.budget.reduction_factor,
    )
    tuner = tune.Tuner(
        _trainable(plan, prepared),
        tune_config=tune.TuneConfig(
            search_alg=_searcher(plan, record["search_id"]), scheduler=scheduler, num_samples=settings.trials,
            trial_dirname_creator=trial_dirname,
            # A finished trial's worker process runs the next trial: the per-trial
            # worker start and transformers imports are paid once per slot.
            reuse_actors=True,
        ),
        run_config=_run_config(plan, [SearchProgress(settings.trials, plan.space.guard), StateBackup(),
                                      CheckpointRetention(backed_up=True), ResultLogUpload(), *callbacks]),
    )
    with snapshot_period(settings.trials), sigterm_stops_gracefully():
        return tuner.fit()


def resume_search(name: str, storage: str = "runs", address: str | None = None):
    """Continue an interrupted search with its saved searcher and scheduler state; a search
    stopped before Ray saved any state (before its first trial) starts from its saved
    settings."""
    exp = experiment_path(name, storage)
    with driver_lock(exp, name, create=False):
        return _resume(name, exp, address, storage)


def _resume(name: str, exp: str, address: str | None, storage: str):
    from ray import tune

    from tune.searcher import new_trials_stored_at, study_location

    # First: a driver killed while Ray copied its state (search.json included) leaves a
    # file cut off; this puts the last complete copy back.
    restore_if_broken(exp)
    record = read_settings(exp)
    plan = plan_from_record(record)
    # The storage the search is resumed from, not the one it was started with: that is
    # stored as given (`runs`, relative to where it ran), and a search stopped before
    # its first trial starts below from these settings, from wherever this runs.
    plan = replace(plan, settings=replace(plan.settings, storage=storage_root(storage)))
    # Checked before Ray's start, as in run_search.
    check_address(address)
    try:
        dataset = load_dataset(plan.base.data)
    except FileNotFoundError as exc:
        # The data is part of the search (--data is refused with --resume): the only way
        # on is the files back where the search recorded them.
        raise ValueError(f"the data this search was started with is gone ({exc}); resuming reads it from where "
                         f"{SETTINGS_FILE} recorded it, so put the files back there (the data cannot change on "
                         "--resume), or start a new search with another --name") from None
    check_same_data(record, dataset.fingerprint, "resuming")
    check_same_model(record, "resuming")
    # No Ray state: stopped after writing search.json, before Ray saved its first state.
    # Nothing ran that a resume could continue, so it starts, as `nerkit search` would
    # have. Trials that reported results did run: then the state was lost, not never written.
    restorable = tune.Tuner.can_restore(exp)
    ran = [] if restorable else reported_trial_directories(exp)
    if ran:
        raise ValueError(f"{exp} has no Ray experiment state, but {len(ran)} trial(s) that reported results "
                         f"({', '.join(ran[:3])}{', …' if len(ran) > 3 else ''}): its state files were removed "
                         "or never reached storage, so it cannot be continued; start the search again under "
                         "a new --name")
    prepared = _tokenise_while(lambda: init_ray_for(plan.settings, address), dataset, plan.base)
    check_storage_on_every_node(exp)
    warn_if_gpus_unused(plan.settings)
    if not restorable:
        logger.warning("search %s stopped before its first trial (no Ray experiment state at %s): starting it "
                       "from its saved settings", name, exp)
        set_aside_unstarted_study(exp)  # the stopped start's study: not learnt from
        return _start(plan, record, prepared, ())  # a Python caller's callbacks were never saved
    # The study as this machine sees it: the copy on storage when the machine that ran
    # the search is gone; the searcher restored below opens it there (tune.searcher).
    study_url = study_for_resume(exp, record)
    records = study_and_ray_trials(plan, exp, study_url)  # read once: a large snapshot is slow to load
    fail_orphaned_trials(plan, exp, records)
    lost = unrecorded_finished_trials(plan, exp, records)
    if lost:
        # Named again by every later resume of this search: they stay out of Ray's table.
        logger.warning(
            "Optuna trials %s finished but are not in Ray's trial table (they ended after the last complete "
            "snapshot of this or an earlier run): their results stay in optuna.db (the searcher learns from "
            "them) and their trial directories on storage, but not in the trial table, and Ray ran or runs "
            "as many new trials in their place", lost)
    # The RunConfig (with its callbacks) and Ray's snapshot period come back from the
    # saved state.
    with study_location(study_url), new_trials_stored_at(exp):
        tuner = tune.Tuner.restore(
            exp, trainable=_trainable(plan, prepared), resume_unfinished=True, resume_errored=True,
        )
        with sigterm_stops_gracefully():
            return tuner.fit()
