"""Ray's experiment snapshot on storage: where it is and what it records per trial.

Ray writes ``experiment_state-<session>.json`` in the driver's staging directory and
copies it to the experiment directory on storage in the background. The copy on
storage is what ``Tuner.restore`` reads after the driver dies, so it is the record
of what a resume will need. This module only reads it; the trial entries are the
JSON Ray itself writes (``trial_data``: one ``[trial state, run metadata]`` pair of
JSON strings per trial).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow.fs as pafs

from tune.storage import join, locate, read_text

SNAPSHOT_PREFIX = "experiment_state-"
SEARCH_GEN_PREFIX = "search_gen_state-"
SEARCHER_PREFIX = "searcher-state-"
#: The study copy nerkit's searcher writes beside its state with object storage (tune.study_store).
STUDY_COPY_PREFIX = "optuna-study-"
#: Ray's state files in the experiment directory (the ``CKPT_FILE_TMPL`` of
#: TuneController, SearchGenerator, Searcher, CallbackList and BasicVariantGenerator),
#: and the study copy that belongs to each snapshot of them.
STATE_PREFIXES = (SNAPSHOT_PREFIX, SEARCH_GEN_PREFIX, SEARCHER_PREFIX, "callback-states-",
                  "basic-variant-state-", STUDY_COPY_PREFIX)


@dataclass(frozen=True)
class SnapshotTrial:
    """One trial as the snapshot on storage records it."""

    trial_id: str
    status: str  # Ray's: PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    checkpoint: str | None  # the last result's checkpoint dir, e.g. checkpoint_000003; None: it had none


def state_files(fs: pafs.FileSystem, exp: str) -> list[str]:
    """The names of Ray's state files directly in ``exp`` (a path in ``fs``), sorted."""
    infos = fs.get_file_info(pafs.FileSelector(exp, allow_not_found=True))
    return sorted(i.base_name for i in infos
                  if i.type == pafs.FileType.File and i.base_name.startswith(STATE_PREFIXES))


def files_ray_reads(names: list[str]) -> list[str]:
    """Of ``names``, the state files Ray's restore reads: the newest (largest name) per kind."""
    newest: dict[str, str] = {}
    for name in names:
        prefix = next((p for p in STATE_PREFIXES if name.startswith(p)), None)
        if prefix is not None:
            newest[prefix] = max(newest.get(prefix, name), name)
    return sorted(newest.values())


def newest_snapshot(exp: str, fs: pafs.FileSystem | None = None) -> str | None:
    """The path of the snapshot Ray's restore reads (the newest session's), or None.

    ``exp`` is a local path or URI; with ``fs`` given, a path inside that filesystem
    (as Ray's trials hold it), and so is the path returned.
    """
    fs, path = locate(exp, fs)
    names = [n for n in files_ray_reads(state_files(fs, path)) if n.startswith(SNAPSHOT_PREFIX)]
    return join(exp, names[0]) if names else None


def read_snapshot(path: str, fs: pafs.FileSystem | None = None) -> dict[str, SnapshotTrial]:
    """The trials a snapshot file records, by trial id.

    Raises ``json.JSONDecodeError`` when the file is cut off (a copy in flight, or a
    driver killed during one) and ``FileNotFoundError`` when it is gone.
    """
    text = read_text(path, fs)
    if text is None:
        raise FileNotFoundError(path)
    trials = {}
    for state_json, metadata_json in json.loads(text)["trial_data"]:
        state, metadata = json.loads(state_json), json.loads(metadata_json)
        # A nerkit result carries the checkpoint saved with it, if any: every result
        # by default; only every Nth and the final one with --checkpoint-every N; never
        # a diverged trial's final report. When it has one, that is the trial's newest
        # checkpoint: Ray restores from it or, if the snapshot fell before Ray processed
        # its save, the one before (tune.retention). When it has none, None says "not
        # known from this snapshot", and retention waits for a later one.
        last = metadata.get("last_result") or {}
        trials[state["trial_id"]] = SnapshotTrial(state["trial_id"], state["status"],
                                                  last.get("checkpoint_dir_name"))
    return trials
