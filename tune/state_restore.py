"""Before a resume: Ray's state files put back whole from the last complete backup.

A driver killed while Ray copied its state leaves a file cut off, or whole files from
two snapshots; a partial copy of a search directory can lack the snapshot itself.
Ray's restore fails on the first and starts the experiment again on the others, so
``nerkit search --resume`` runs :func:`restore_if_broken` before anything is read
(tune.state_backup keeps the backups and says how).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from tune.snapshot import SNAPSHOT_PREFIX, files_ray_reads, state_files
from tune.state_backup import BACKUP_DIR, BROKEN_DIR, COMPLETE, STATIC_FILES, is_complete, latest_backup
from tune.state_check import disagreements
from tune.storage import filesystem, is_file, join, read_bytes, write_bytes

logger = logging.getLogger(__name__)


def restore_if_broken(exp: str) -> str | None:
    """Before a resume: if a file a resume reads is cut off, or Ray's state files are
    whole but from two snapshots (tune.state_check), or Ray's snapshot is missing where a
    backup shows there was one (a partial copy of the directory), put the last complete backup in
    place (the state files and any cut-off static file are moved to
    ``.nerkit/broken/<time>/``, never deleted) and return the backup's path; None when
    nothing was broken.

    Raises ``ValueError`` when something is broken and there is no complete backup.
    """
    fs, path = filesystem(exp)
    names = state_files(fs, path)
    statics = [n for n in STATIC_FILES if is_file(f"{path}/{n}", fs)]
    contents = {n: read_bytes(f"{path}/{n}", fs) for n in files_ray_reads(names) + statics}
    broken = [n for n, data in contents.items() if not is_complete(data)]
    # Only whole files can disagree; a cut-off one already sends the state back.
    mixed = [] if broken else disagreements({n: d for n, d in contents.items() if n not in STATIC_FILES})
    backup = latest_backup(fs, path)
    # No snapshot where a backup shows there was one: a partial copy of the directory.
    missing = backup is not None and not any(n.startswith(SNAPSHOT_PREFIX) for n in names)
    if not broken and not mixed and not missing:
        return None
    what = (f"{join(exp, broken[0])} is cut off" if broken
            else f"Ray's state files in {exp} are from two snapshots ({'; '.join(mixed)})" if mixed
            else f"{exp} has no {SNAPSHOT_PREFIX}*.json, Ray's record of its trials")
    if backup is None:
        raise ValueError(
            f"{what}: the driver was killed while Ray was copying its state, and "
            f"there is no complete copy in {join(exp, BACKUP_DIR)} (searches started before nerkit kept one). "
            "Start a new search under another --name; this experiment's trial directories, checkpoints "
            "and optuna.db are left as they are")
    aside = f"{path}/{BROKEN_DIR}/{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}"
    fs.create_dir(aside, recursive=True)
    # A cut-off or mismatched state file: every state file goes (Ray reads the newest of
    # each kind, so a newer cut-off session must not stay) and the backup's come back.
    # Only a static file cut off (a resumed search copies them again with every
    # snapshot): the state files are whole and newer than the backup's, so they stay.
    state_broken = bool(mixed) or missing or any(n not in STATIC_FILES for n in broken)
    for name in (names if state_broken else []) + [n for n in statics if n in broken]:
        fs.move(f"{path}/{name}", f"{aside}/{name}")
    for name in json.loads(read_bytes(f"{backup}/{COMPLETE}", fs)):
        if is_file(f"{path}/{name}", fs):
            continue  # whole where it is
        write_bytes(f"{path}/{name}", read_bytes(f"{backup}/{name}", fs), fs)
    logger.warning("%s (%s): resuming with %s from the last complete copy, %s; the files found are kept in %s",
                   what, "a partial copy of the directory?" if missing and not broken and not mixed
                   else "the driver died while Ray copied its state",
                   "the experiment state" if state_broken else "those files", backup, aside)
    return backup
