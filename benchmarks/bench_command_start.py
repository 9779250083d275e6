"""What a `nerkit` command costs before and after its own work: the search driver's start and
the interpreter's teardown.

Command::

    python benchmarks/bench_command_start.py --repeats 3 --out benchmarks/results/command_start.json

Two measurements, each in fresh processes (what a user's command pays):

* ``teardown``: a process imports what a command imports (torch alone; the search
  driver; transformers' BERT model, which every trial and ``nerkit train`` load), prints
  the time and exits. The time from that print to the process's end is the interpreter's
  teardown, measured ``plain`` and with ``nerkit.cli``'s ``collect+freeze``
  (``gc.collect()`` then ``gc.freeze()``, what ``nerkit.cli.main`` does before exiting).
* ``start``: the search driver's start on the bundled corpus and the tiny test model,
  with Ray started locally: tokenising the data, then starting Ray (``sequential``, as
  before), against tokenising in a thread while Ray starts (``overlapped``, what
  ``tune.driver`` does now). Times from after the imports to both done.

Prints JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchutil as bu

REPO = Path(__file__).resolve().parents[1]

IMPORT_SETS = {
    "torch": "import torch",
    "search driver": "import tune.driver",
    "BERT model": "import torch, transformers\nfrom transformers import BertForTokenClassification",
}
TEARDOWNS = {"plain": "", "collect+freeze": "import gc\ngc.collect()\ngc.freeze()"}

START = """
import sys, time
mode, model, data = sys.argv[1:4]
import ray
import tune.driver  # noqa: F401  (what the command imports first)
from nerkit.data import DataConfig, load_dataset
from nerkit.features import prepare_loaded
t0 = time.perf_counter()
dataset = load_dataset(DataConfig(path=data))
start = lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
if mode == "sequential":
    prepare_loaded(dataset, model)
    start()
else:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(prepare_loaded, dataset, model)
        start()
        future.result()
print(time.perf_counter() - t0)
ray.shutdown()
"""


def _teardown_s(imports: str, teardown: str) -> float:
    code = f"{imports}\n{teardown}\nimport time\nprint(repr(time.time()), flush=True)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    printed = float(proc.stdout.readline())
    proc.wait()
    return time.time() - printed


def _start_s(mode: str, model: Path, data: Path) -> float:
    out = subprocess.run([sys.executable, "-c", START, mode, str(model), str(data)], capture_output=True,
                         text=True, cwd=REPO, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant, interleaved")
    parser.add_argument("--only", choices=["teardown", "start"], default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from nerkit.corpus import bundled_data_dir

    rows: list[dict[str, Any]] = []
    if args.only in (None, "teardown"):
        for name, imports in IMPORT_SETS.items():
            runs: dict[str, list[float]] = {t: [] for t in TEARDOWNS}
            for _ in range(args.repeats):
                for teardown, code in TEARDOWNS.items():
                    runs[teardown].append(_teardown_s(imports, code))
            for teardown, times in runs.items():
                rows.append({"measure": "teardown", "what": name, "variant": teardown,
                             "median_s": statistics.median(times), "runs_s": [round(t, 2) for t in times]})
    if args.only in (None, "start"):
        with tempfile.TemporaryDirectory(prefix="nerkit-start-bench-") as tmp:
            model = bu.tiny_model(Path(tmp) / "tiny")
            runs = {"sequential": [], "overlapped": []}
            for _ in range(args.repeats):
                for mode in runs:
                    runs[mode].append(_start_s(mode, model, bundled_data_dir()))
            for mode, times in runs.items():
                rows.append({"measure": "start", "what": "tokenise + local Ray start", "variant": mode,
                             "median_s": statistics.median(times), "runs_s": [round(t, 2) for t in times]})
    doc = bu.document("command_start", vars(args))
    doc["rows"] = rows
    doc["load_avg_1m_at_end"] = bu.load_avg()
    bu.emit(doc, [("Command start and teardown (seconds, median over runs)", rows,
                   ["measure", "what", "variant", "median_s", "runs_s"])], args.out)


if __name__ == "__main__":
    main()
