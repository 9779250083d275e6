"""What object storage adds to each snapshot of a search: the copy of the Optuna study.

Command::

    python benchmarks/bench_study_copy.py --trials 16,200,1000 --evals 6 --repeats 20 \\
        --out benchmarks/results/study_copy.json

With ``s3://``/``gs://`` storage, ``tune.searcher.ResumableOptunaSearch.save`` (run by
Ray at every experiment snapshot: about once a second, every ``trials / 100`` s above
100 trials; tune.driver_process.snapshot_period) also copies the SQLite study beside its state
with SQLite's online backup and hashes the copy (tune.study_store), and Ray uploads the
copy with the snapshot. For studies of ``--trials`` finished trials with ``--evals``
reported evaluations each (what a search of that size holds), this times ``save`` with
the copy and without it (local storage), and gives the copy's size: the bytes each
snapshot adds to the upload. The upload itself depends on the store and is not timed.
Prints JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchutil as bu


def _searcher(directory: Path, trials: int, evals: int):
    import optuna

    from tune.driver import plan_search
    from tune.searcher import ResumableOptunaSearch
    from tune.settings import SearchSettings
    from tune.space import Sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{directory / 'optuna.db'}"
    space = plan_search(SearchSettings(name="b", space=str(bu.REPO / "search_spaces" / "default.yaml"),
                                       storage=str(directory))).space
    searcher = ResumableOptunaSearch(space=Sampler(space), metric="best_dev_f1", mode="max", study_name="b",
                                     storage=optuna.storages.RDBStorage(url),
                                     sampler=optuna.samplers.TPESampler(seed=0))
    # The study a search of this size leaves: the default space's parameters (drawn
    # at random: TPE would take minutes to ask 1,000), one intermediate value per evaluation.
    study = optuna.load_study(study_name="b", storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(trials):
        trial = study.ask()
        Sampler(space)(trial)
        for step in range(evals):
            trial.report(0.1 * step + 1e-4 * i, step)
        study.tell(trial, 0.5)
    return searcher


def _time_save(searcher, directory: Path, copies: bool, repeats: int) -> list[float]:
    searcher._study_copies = copies
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        searcher.save(str(directory / "searcher-state-bench.pkl"))
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="16,200,1000", help="study sizes, comma-separated")
    parser.add_argument("--evals", type=int, default=6, help="evaluations reported per trial")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for trials in (int(t) for t in args.trials.split(",")):
        with tempfile.TemporaryDirectory(prefix="nerkit-study-bench-") as tmp:
            directory = Path(tmp)
            searcher = _searcher(directory, trials, args.evals)
            plain = _time_save(searcher, directory, False, args.repeats)
            copied = _time_save(searcher, directory, True, args.repeats)
            copy = directory / "optuna-study-bench.db"
            rows.append({
                "trials": trials, "study_kib": copy.stat().st_size / 1024,
                "save_ms_local": 1000 * statistics.median(plain),
                "save_ms_with_copy": 1000 * statistics.median(copied),
                "copy_ms": 1000 * (statistics.median(copied) - statistics.median(plain)),
                "snapshot_period_s": max(1.0, trials / 100),
            })
    doc = bu.document("study_copy", vars(args))
    doc["rows"] = rows
    doc["load_avg_1m"] = bu.load_avg()
    bu.emit(doc, [("Searcher save per snapshot, median", rows,
                   ["trials", "study_kib", "save_ms_local", "save_ms_with_copy", "copy_ms", "snapshot_period_s"])],
            args.out)


if __name__ == "__main__":
    main()
