"""Target 2 over many seeds: read ``bench_search_efficiency.py`` JSON files, print one table.

Command (the eleventh session's runs, random arm on its own sampler seed)::

    python benchmarks/summarize_search_efficiency.py benchmarks/results/search_efficiency_indep_24_s[0-9]*.json

For each file (one seed): random's final best dev F1 and the test F1 of its best
checkpoint, the same for the default search, the epochs each spent, and the share of
random's epochs at which the default search first reached random's final best. That
share counts a trial's epochs when it ends (the curves' convention); ``upper`` adds
the epochs of the next trial to end, which was running beside it in the other slot,
as an upper bound. Then the totals: how many seeds meet the target (share ≤ 1/3) by
either count, and the mean best dev and test F1 of each arm. Prints markdown and,
with ``--out``, writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean
from typing import Any


def _reach_upper(curve: list[dict[str, Any]], target: float) -> float | None:
    """Epochs up to the trial that reached ``target``, plus those of the next trial to end."""
    for i, point in enumerate(curve):
        if point["trial_dev_f1"] >= target - 1e-12:
            later = curve[i + 1]["epochs"] if i + 1 < len(curve) else 0.0
            return point["cum_epochs"] + (later or 0.0)
    return None


def seed_row(doc: dict[str, Any]) -> dict[str, Any]:
    """One seed's figures from one benchmark document."""
    default, random = doc["arms"]["default"], doc["arms"]["random"]
    target = doc["target"]
    epochs = target["random_epochs"]
    upper = _reach_upper(default["curve"], target["random_final_best_dev_f1"])
    return {
        "seed": doc["settings"]["seed"],
        "random_seed": doc["settings"].get("random_seed", doc["settings"]["seed"]),
        "random_best_dev": random["best_dev_f1"], "random_test": random["test_f1"], "random_epochs": epochs,
        "default_best_dev": default["best_dev_f1"], "default_test": default["test_f1"],
        "default_epochs": default["epochs"],
        "share": target["share_of_random_compute"],
        "share_upper": round(upper / epochs, 3) if upper is not None else None,
        "met": target["met"],
        "met_upper": upper is not None and upper <= epochs / 3,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "seeds": len(rows),
        "met": sum(r["met"] for r in rows),
        "met_upper": sum(r["met_upper"] for r in rows),
        "default_best_dev_mean": round(mean(r["default_best_dev"] for r in rows), 4),
        "random_best_dev_mean": round(mean(r["random_best_dev"] for r in rows), 4),
        "default_test_mean": round(mean(r["default_test"] for r in rows), 4),
        "random_test_mean": round(mean(r["random_test"] for r in rows), 4),
        "default_dev_higher_level_lower": [
            sum(r["default_best_dev"] > r["random_best_dev"] + 1e-9 for r in rows),
            sum(abs(r["default_best_dev"] - r["random_best_dev"]) <= 1e-9 for r in rows),
            sum(r["default_best_dev"] < r["random_best_dev"] - 1e-9 for r in rows)],
        "default_test_higher": sum(r["default_test"] > r["random_test"] for r in rows),
        "default_epochs_range": [min(r["default_epochs"] for r in rows), max(r["default_epochs"] for r in rows)],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    docs = {f: json.loads(f.read_text()) for f in args.files}
    # A summary written by --out beside the seeds' files matches a loose glob (…_s*.json).
    odd = [str(f) for f, doc in docs.items() if not isinstance(doc, dict) or "arms" not in doc]
    if odd:
        p.error(f"{', '.join(odd)}: not a bench_search_efficiency.py result (no 'arms'); pass only the seeds' "
                "files, e.g. …_s[0-9]*.json")
    rows = sorted((seed_row(doc) for doc in docs.values()), key=lambda r: r["seed"])
    total = summarize(rows)
    print("| seed | default: best dev (test) | epochs | random: best dev (test) | epochs | reached at | upper |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        share = f"**{r['share']}**" if r["met"] else (r["share"] if r["share"] is not None else "never")
        upper = r["share_upper"] if r["share_upper"] is not None else "never"
        print(f"| {r['seed']} | {r['default_best_dev']:.3f} ({r['default_test']:.3f}) | {r['default_epochs']:g} | "
              f"{r['random_best_dev']:.3f} ({r['random_test']:.3f}) | {r['random_epochs']:g} | {share} | {upper} |")
    print()
    print(json.dumps(total, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps({"seeds": rows, "total": total}, indent=2) + "\n")


if __name__ == "__main__":
    main()
