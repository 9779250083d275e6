"""Search settings: parsed once at the edge, stored whole in the experiment directory.

``search.json`` in the experiment directory holds the settings, the whole search
space and the base training config, so a search explains itself and ``--resume``
rebuilds exactly the same trainable, searcher and scheduler.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from nerkit.config import check_field_types
from nerkit.data import DataConfig
from nerkit.model import BUNDLED_MODEL, DEFAULT_MAX_LENGTH
from nerkit.paths import local_absolute
from tune.storage import exists, join, parent

#: What the search maximises: ASHA's rungs, TPE, Ray's checkpoint ranking and the
#: trial tables' best evaluation all read this one result key.
METRIC = "dev_f1"

SETTINGS_FILE = "search.json"
OPTUNA_FILE = "optuna.db"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "hdfs://")


def is_remote(storage: str) -> bool:
    return storage.startswith(REMOTE_SCHEMES)


def storage_root(storage: str) -> str:
    """Absolute local path (or the URI as given for remote storage)."""
    if is_remote(storage):
        return storage
    if "://" in storage:
        # Anything else would silently become a local folder named "file:" or "foo:".
        raise ValueError(f"storage is {storage!r}, but a URI must start with one of {list(REMOTE_SCHEMES)}; "
                         "for a local directory give its path")
    # abspath, not resolve: a symlink stays as given (a shared mount reached through a link
    # may point elsewhere on other nodes; nerkit.paths.local_absolute keeps it too).
    return os.path.abspath(os.path.expanduser(storage))


def experiment_path(name: str, storage: str = "runs") -> str:
    """Where search ``name`` lives under ``storage`` (one rule for run, resume and readers).

    A name that could not have been a search's (``''``, ``../x``) is refused here, for
    readers too: it named the storage's parent or another directory.
    """
    name = name.rstrip("/") if isinstance(name, str) else name  # a shell-completed `demo/`
    check_name(name)
    return join(storage_root(storage), name)


def planned_baselines(baselines: list, enabled: bool, trials: int) -> list:
    """The baselines a search enqueues as its first trials: the space's, in order, no more
    than its trials, none with --no-baselines (one rule for the driver, tables and report)."""
    return list(baselines)[:trials] if enabled else []


def check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"search name is {name!r}, but must match {_NAME.pattern} "
                         "(letters, digits, '_', '-', '.')")


@dataclass(frozen=True)
class SearchSettings:
    name: str                              # experiment name (a directory under storage)
    space: str                             # search space YAML path (as given)
    storage: str = "runs"                  # local dir, NFS path, s3://… or gs://…
    trials: int = 8                        # number of trials (baselines included)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0            # fractional: 0.5 → two trials per GPU
    max_concurrent: int | None = None      # None: as many as resources allow
    seed: int = 0                          # TPE sampler seed
    baselines: bool = True                 # enqueue the space's baselines first
    max_failures: int = 2                  # retries of a failing trial (from its checkpoint)
    checkpoint_every: int = 1              # checkpoint every Nth evaluation (and the final one)
    model: str = BUNDLED_MODEL
    max_length: int = DEFAULT_MAX_LENGTH
    data: DataConfig = field(default_factory=DataConfig)
    max_epochs: float | None = None        # overrides the space's budget
    grace_epochs: float | None = None
    reduction_factor: float | None = None
    startup_trials: int | None = None      # TPE's trials before it models (baselines count); None: the rule below

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            object.__setattr__(self, "data", DataConfig.from_dict(self.data))
        for name in ("space", "storage"):  # a pathlib.Path from a caller is the path it names
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        check_name(self.name)
        if not isinstance(self.storage, str) or not self.storage.strip():
            raise ValueError(f"storage is {self.storage!r}, but must be a directory or a URI ({', '.join(REMOTE_SCHEMES)})")
        # Then every field's type, from the annotations: `baselines="no"` read as true, and a
        # string count failed on `<` with a TypeError that named no setting.
        check_field_types(self)
        storage_root(self.storage)  # an unknown URI scheme is refused there
        object.__setattr__(self, "model", local_absolute(self.model))
        object.__setattr__(self, "data", self.data.with_absolute_paths())
        if not (isinstance(self.trials, int) and self.trials >= 1):
            raise ValueError(f"trials is {self.trials!r}, but must be an integer >= 1")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise ValueError(f"seed is {self.seed!r}, but must be an integer in [0, 2**32)")
        if not 0 < self.cpus_per_trial < math.inf:
            raise ValueError(f"cpus_per_trial is {self.cpus_per_trial}, but must be a finite number > 0")
        if not 0 <= self.gpus_per_trial < math.inf:
            raise ValueError(f"gpus_per_trial is {self.gpus_per_trial}, but must be a finite number >= 0")
        for name in ("max_epochs", "grace_epochs", "reduction_factor"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise ValueError(f"{name} is {value}, but must be a finite number > 0 or unset")
        if self.reduction_factor is not None and not self.reduction_factor >= 2:
            # The space's own rule (tune.space.Budget), said in the words of this setting.
            raise ValueError(f"reduction_factor is {self.reduction_factor}, but must be >= 2 (ASHA keeps the top "
                             "1/reduction_factor of the trials at each rung) or unset")
        if self.startup_trials is not None and not (isinstance(self.startup_trials, int) and self.startup_trials >= 1):
            raise ValueError(f"startup_trials is {self.startup_trials!r}, but must be an integer >= 1 or unset "
                             "(unset: a third of the trials, at least 4 and at most 10)")
        if self.gpus_per_trial > 1 and not float(self.gpus_per_trial).is_integer():
            raise ValueError(f"gpus_per_trial is {self.gpus_per_trial}: above 1 it must be a whole number")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent is {self.max_concurrent}, but must be >= 1 or unset")
        if self.max_failures < 0:
            raise ValueError(f"max_failures is {self.max_failures}, but must be >= 0")
        if not (isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 1):
            raise ValueError(f"checkpoint_every is {self.checkpoint_every!r}, but must be an integer >= 1 "
                             "(1: a checkpoint at every evaluation)")

    @property
    def tpe_startup_trials(self) -> int:
        """Trials TPE takes (baselines, then random points) before it models the results.

        Unset, a third of the trials, within [4, 10]: TPE's model needs a few scored points
        to split into good and bad, and more than 10 random ones waste a large search's budget.
        """
        if self.startup_trials is not None:
            return self.startup_trials
        return min(10, max(4, self.trials // 3))

    @property
    def storage_root(self) -> str:
        return storage_root(self.storage)

    @property
    def experiment_path(self) -> str:
        return experiment_path(self.name, self.storage)

    def optuna_url(self) -> str:
        """Where the live Optuna study is: ``optuna.db`` inside the experiment directory, so
        `optuna-dashboard` opens it. Remote storage cannot host SQLite: the study then lives
        on the driver's disk and is copied to storage with every snapshot (tune.study_store)."""
        from tune.study_store import live_study_url

        return live_study_url(self.experiment_path)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchSettings":
        return cls(**values)


def read_settings(experiment_path: str) -> dict[str, Any]:
    """The ``search.json`` record of an experiment (local or remote storage)."""
    from tune.storage import read_text

    text = read_text(join(experiment_path, SETTINGS_FILE))
    if text is None:
        from tune.driver_lock import running_driver

        holder = running_driver(experiment_path)
        if holder is not None:
            # A driver holds it and has not written search.json yet: the search is starting
            # (its data checked and tokenised, Ray started), not missing.
            raise ValueError(f"{experiment_path}: the search is starting (its driver: {holder}) and has not written "
                             f"{SETTINGS_FILE} yet; try again in a few seconds")
        from tune.driver_lock import LOCK_FILE

        name = experiment_path.rstrip("/").rsplit("/", 1)[-1]
        if exists(join(experiment_path, LOCK_FILE)):
            # A driver killed (SIGKILL, a lost node) before it wrote search.json leaves its
            # lock file alone; the clean-up of a refused start never ran.
            raise ValueError(f"{experiment_path}: the search {name!r} was stopped before it was set up (only its "
                             f"driver's lock file is there, no {SETTINGS_FILE}), so there is nothing to continue; "
                             f"start it again with: nerkit search --name {name} --storage "
                             f"{parent(experiment_path)} and its options")
        root = parent(experiment_path)
        found = searches_in(root)
        raise ValueError(f"{experiment_path}: no {SETTINGS_FILE}, so this is not a nerkit search; check --name "
                         f"and --storage (searches in {root}: {', '.join(found) if found else 'none'})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{join(experiment_path, SETTINGS_FILE)} is cut off or damaged ({exc.msg} at line {exc.lineno}); "
                         f"{_settings_backup_hint(experiment_path)}") from None


def _settings_backup_hint(experiment_path: str) -> str:
    """Where a whole copy of a damaged ``search.json`` is, if nerkit kept one."""
    from tune.state_backup import BACKUP_DIR, latest_backup
    from tune.storage import filesystem, is_file

    fs, path = filesystem(experiment_path.rstrip("/"))
    backup = latest_backup(fs, path)
    if backup is not None and is_file(f"{backup}/{SETTINGS_FILE}", fs):
        return f"copy the last whole copy, {backup}/{SETTINGS_FILE}, over it"
    return (f"there is no copy of it in {experiment_path}/{BACKUP_DIR}; restore it from a backup of the storage, or "
            "start a new search under another --name")


def searches_in(storage: str) -> list[str]:
    """The names of the searches under ``storage`` (directories holding a ``search.json``)."""
    import pyarrow.fs as pafs

    from tune.storage import filesystem

    fs, path = filesystem(storage)
    try:
        dirs = [i for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
                if i.type == pafs.FileType.Directory]
    except OSError:
        return []
    return sorted(d.base_name for d in dirs if fs.get_file_info(f"{d.path}/{SETTINGS_FILE}").type == pafs.FileType.File)


def check_same_model(record: dict[str, Any], doing: str) -> None:
    """Refuse to go on with a search whose base model's files changed since it started
    (:func:`nerkit.model.model_fingerprint`): trials resumed on other weights, or another
    size, would mix two base models in one search (a checkpoint of the other size was
    even taken for a damaged one, and trained again from the start). Searches from before
    the fingerprint was recorded, and a model whose files cannot be read here (a hub name
    not cached on this machine), are not checked."""
    from nerkit.model import model_fingerprint

    recorded = record.get("model_fingerprint")
    model = record["base_config"]["model"]
    found = model_fingerprint(model) if recorded else None
    if found and found != recorded:
        raise ValueError(
            f"the base model of this search ({model}) changed since the search started (its config, weight and "
            f"tokenizer files, or a hub model's revision: {_short(found)}, recorded {_short(recorded)}), so {doing} "
            "would train on "
            "another model than the search's; put the original files back, or start a new search with another "
            "--name on the new model")


def _short(fingerprint: str) -> str:
    """A fingerprint as messages show it: a hash's first 12 digits, a hub revision whole."""
    return fingerprint if fingerprint.startswith("hub:") else fingerprint[:12]


def check_same_data(record: dict[str, Any], fingerprint: str, doing: str) -> None:
    """Refuse to go on with a search whose data changed since it started.

    ``search.json`` records the fingerprint (every split's tokens and tags) of the data
    the search started on; resuming on other data would mix two datasets in one search,
    and promoting would score the model on data other than the one it was chosen on.
    Searches from before the fingerprint was recorded are not checked.
    """
    recorded = record.get("data_fingerprint")
    if recorded and recorded != fingerprint:
        data = record["base_config"]["data"]
        files = {k: data.get(k) for k in ("path", "train", "dev", "test") if data.get(k)}
        where = ", ".join(f"{k} {v}" for k, v in files.items()) or "the bundled corpus"
        raise ValueError(
            f"the data of this search ({where}) changed since the search started "
            f"(fingerprint {fingerprint[:12]}, recorded {recorded[:12]}), so {doing} would use other data than "
            "the search's; put the original files back, or start a new search on the new data")

