"""The Ray Tune trainable: one search trial = one nerkit.train.train run.

Each evaluation is reported to Tune; every ``checkpoint_every``-th one (and the
final one) with a resumable checkpoint (model, optimizer, scheduler, step, data
order, RNG). After a failure Ray restarts the trial and ``tune.get_checkpoint()``
hands back the last checkpoint, from which training continues exactly, redoing the
evaluations reported since (at most ``checkpoint_every - 1``; after a resumed driver,
also what Ray's last experiment snapshot had not recorded). Tokenised data arrives through
``tune.with_parameters`` (Ray's object store), prepared once per search by the driver.

Every result carries finite numbers only: a diverged run reports dev F1 0 and
``stop_reason="diverged"`` so neither ASHA nor Optuna ever sees NaN.

Fault injection (for testing retries on a cluster; docs/CLUSTER.md): when the
environment variable ``NERKIT_FAULT_INJECT`` holds JSON like
``{"when": {"learning_rate": 3e-05}, "at_eval": 1, "error": "oom"}``, every trial
whose resolved config matches ``when`` raises ``torch.cuda.OutOfMemoryError`` right
after reporting evaluation ``at_eval`` or any later one. Every
attempt fails again, so the trial uses up its retries and ends as ``error``. Trials
read the variable where they run: set it in the environment of the Ray nodes or in
the job's ``runtime_env``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from typing import TYPE_CHECKING, Any

from ray import tune

from nerkit.config import TrainConfig
from tune.staging import remove_stale_staging, staging_prefix

if TYPE_CHECKING:
    from nerkit.features import PreparedData

# torch and nerkit.train (which brings transformers' model code and seqeval's
# scikit-learn) are imported where a trial runs, not here: the search driver imports
# this module only to hand run_trial to Ray, and they took about 4 s of its start.

logger = logging.getLogger(__name__)

FAULT_ENV = "NERKIT_FAULT_INJECT"
#: "1": the cluster's GPUs are logical resources (no CUDA device behind them), see run_trial.
LOGICAL_GPUS_ENV = "NERKIT_LOGICAL_GPUS"
_FAULT_KEYS = {"when", "at_eval", "error"}
_FAULT_ERRORS = ("oom",)
_FAULT_EXAMPLE = '{"when": {"learning_rate": 3e-05}, "at_eval": 1, "error": "oom"}'


def trial_config(base: dict[str, Any], sampled: dict[str, Any]) -> TrainConfig:
    """The resolved training config of one trial: base settings + sampled values."""
    return TrainConfig.from_dict(base).with_overrides(**sampled)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = 0.0
        out[key] = value
    return out


def injected_fault(cfg: TrainConfig, spec: str | None) -> int | None:
    """The evaluation after which this trial fails on purpose, or None (module doc)."""
    if not spec:
        return None
    try:
        fault = json.loads(spec)
    except json.JSONDecodeError as e:
        raise ValueError(f"{FAULT_ENV} is {spec!r}, which is not JSON ({e}); expected e.g. {_FAULT_EXAMPLE}") from None
    if not isinstance(fault, dict) or not set(fault) <= _FAULT_KEYS or not isinstance(fault.get("when", {}), dict):
        raise ValueError(f"{FAULT_ENV} is {spec!r}, but must be an object with keys {sorted(_FAULT_KEYS)} "
                         f"and a `when` mapping, e.g. {_FAULT_EXAMPLE}")
    if fault.get("error", "oom") not in _FAULT_ERRORS:
        raise ValueError(f"{FAULT_ENV} error is {fault['error']!r}, but must be one of {_FAULT_ERRORS}")
    at_eval = fault.get("at_eval", 0)
    if not (isinstance(at_eval, int) and at_eval >= 0):
        raise ValueError(f"{FAULT_ENV} at_eval is {at_eval!r}, but must be an integer >= 0")
    values = cfg.to_dict()
    return at_eval if all(values.get(k) == v for k, v in fault.get("when", {}).items()) else None


def writes_checkpoint(metrics: dict[str, Any], checkpoint_every: int) -> bool:
    """Whether the evaluation in ``metrics`` is reported with a checkpoint.

    Every ``checkpoint_every``-th evaluation (1-based: with 2, the 2nd, 4th, …) and
    always a run's final one, so a trial that ends on its own leaves its end state.
    A trial ASHA stops before its first checkpointed evaluation leaves none: it is
    the weak trials that stop early, and their checkpoints are what fewer writes save.
    """
    return bool(metrics.get("final")) or (metrics["eval_index"] + 1) % checkpoint_every == 0


def _use_only_reserved_gpus(gpu_ids: list) -> None:
    """Train on the GPUs Ray reserved for this trial, and only on those.

    Ray (2.x) leaves ``CUDA_VISIBLE_DEVICES`` as it is for a trial that reserved no GPU,
    so device ``auto`` would take GPU 0 of its node, unreserved and shared with the
    trials that did reserve it: hide the GPUs (before anything starts CUDA here). A
    trial given a GPU that torch cannot use (a CPU build of torch, or an NVIDIA driver
    older than torch's CUDA) would train on the CPU while holding the GPU: refuse,
    unless ``NERKIT_LOGICAL_GPUS=1`` says the cluster's GPUs are logical resources only
    (tests/tune/cluster_utils.py).
    """
    if not gpu_ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return
    import torch

    if not torch.cuda.is_available() and os.environ.get(LOGICAL_GPUS_ENV) != "1":
        raise RuntimeError(
            f"Ray gave this trial GPU(s) {gpu_ids}, but torch {torch.__version__} (CUDA build: "
            f"{torch.version.cuda or 'none'}) finds no CUDA device on this node, so it would train on the CPU while "
            "holding the GPU: install a CUDA build of torch that this node's NVIDIA driver supports, or search "
            f"with --gpus-per-trial 0 (set {LOGICAL_GPUS_ENV}=1 on the nodes where GPUs are logical resources only)")


def run_trial(
    config: dict[str, Any], *, base: dict[str, Any], prepared: PreparedData, checkpoint_every: int = 1,
) -> None:
    """Ray Tune function trainable (see module doc)."""
    import ray
    import torch

    from transformers.utils import logging as hf_logging

    from nerkit.checkpoint import DamagedCheckpoint
    from nerkit.train import train

    hf_logging.disable_progress_bar()  # one bar per checkpoint save would flood trial logs
    cfg = trial_config(base, config)
    _use_only_reserved_gpus(ray.get_gpu_ids())
    remove_stale_staging()
    runtime = ray.get_runtime_context()
    if cfg.num_threads is None:
        # Use exactly the CPUs Ray reserved for this trial: torch's default (all
        # cores) oversubscribes the node when several trials share it.
        cpus = int(runtime.get_assigned_resources().get("CPU", 0))
        cfg = cfg.with_overrides(num_threads=max(1, cpus))
    # Where the trial ran, for the trial table (Ray adds node_ip and hostname itself).
    placement = {
        "node_id": runtime.get_node_id(),
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "num_threads": cfg.num_threads,
    }
    fail_after = injected_fault(cfg, os.environ.get(FAULT_ENV))
    last: dict[str, Any] = {}

    def fail_if_due(eval_index: int) -> None:
        if fail_after is not None and eval_index >= fail_after:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory (injected by {FAULT_ENV} after evaluation {eval_index})")

    def report(metrics: dict[str, Any], save) -> None:
        nonlocal last
        last = _finite({**metrics, **placement, "stop_reason": "completed" if metrics.get("final") else ""})
        if not writes_checkpoint(metrics, checkpoint_every):
            tune.report(last)
        else:
            with tempfile.TemporaryDirectory(prefix=staging_prefix()) as tmp:
                save(tmp)
                tune.report(last, checkpoint=tune.Checkpoint.from_directory(tmp))
        fail_if_due(metrics["eval_index"])

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        result = train(cfg, prepared=prepared, report=report)
    else:
        try:
            with checkpoint.as_directory() as resume_dir:
                logger.info("trial %s resumes from %s", tune.get_context().get_trial_id(), resume_dir)
                result = train(cfg, prepared=prepared, report=report, resume_from=resume_dir)
        except DamagedCheckpoint as exc:
            # Every retry would restore the same files, and Ray keeps no other checkpoint
            # it would fall back to: the trial trains again from the start (its evaluations
            # are reported again, as after any restore, and replace the earlier ones).
            logger.warning("trial %s: %s (on storage: %s); it trains again from the start",
                           tune.get_context().get_trial_id(), exc, checkpoint.path)
            result = train(cfg, prepared=prepared, report=report)
    if result.last is not None and not last:
        # Restored from its final checkpoint (each attempt of a faulty trial gets one
        # evaluation further), the run has nothing left to train or report; it must fail
        # too, or a trial with enough retries would end `completed` instead of `error`.
        fail_if_due(result.last["eval_index"])
    if result.status == "diverged":
        # A run restored from a checkpoint that diverged before its next evaluation reported
        # nothing here: its last evaluation is the checkpoint's own (train's result.last).
        # Without it the diverged result said evaluation 0 at epoch 0, and the trial table
        # (which reads a trial's last result for its budget columns) lost the epochs trained.
        last = last or _finite(result.last or {})
        # One last, finite result that ends the trial as diverged, at its last evaluation's
        # epoch (ASHA keeps the scores it recorded at the rungs before); the searcher learns
        # the trial's best evaluation before it (tune.searcher), the checkpoint it would ship,
        # or 0 when it diverged before its first.
        tune.report({**last, **placement, "dev_f1": 0.0, "entity_pred_ratio": 0.0,
                     "final": True, "stop_reason": "diverged",
                     "epoch": last.get("epoch", 0.0), "eval_index": last.get("eval_index", -1) + 1})
