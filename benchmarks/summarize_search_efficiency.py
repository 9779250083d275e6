"""Target 2 over many seeds: read ``bench_search_efficiency.py`` JSON files, print one table.

Command (the eleventh session's runs, random arm on its own sampler seed)::

    python benchmarks/summarize_search_efficiency.py benchmarks/results/search_efficiency_indep_24_s[0-9]*.json

A variant of the default arm run alone (``--arms default``), scored against the random
arm another run stored for the same seed (the sixteenth to eighteenth sessions' runs
against the fifteenth session's random arms)::

    python benchmarks/summarize_search_efficiency.py benchmarks/results/search_efficiency_session16_startup4_s[0-9].json \
        --random-arms 'benchmarks/results/search_efficiency_session15_s{seed}.json'

For each file (one seed): random's final best dev F1 and the test F1 of its best
checkpoint, the same for the default search, the epochs each spent, and the share of
random's epochs at which the default search first reached random's final best. That
share counts a trial's epochs when it ends (the curves' convention); ``upper`` adds
the epochs of the next trial to end, which was running beside it in the other slot,
as an upper bound. ``best in a third`` is the highest trial dev F1 among the default
arm's trials ended within a third of random's epochs, and ``margin`` its distance from
random's final best (negative: short of it). Then the totals: how many seeds meet the
target (share ≤ 1/3) by either count, and the mean best dev and test F1 of each arm.
Prints markdown and, with ``--out``, writes the numbers as JSON.

``--drop-baselines`` re-scores a default arm as if its two baselines (reference trials
for the report) had cost nothing: they leave the curve and their epochs leave every later
trial's count. It is arithmetic on stored curves, not a run: without the baselines the
searcher and ASHA would have seen other results (``bench_search_efficiency.py
--no-baselines`` runs that instead)::

    python benchmarks/summarize_search_efficiency.py benchmarks/results/search_efficiency_session15_s[0-9].json \
        --drop-baselines
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean
from typing import Any


def _reach(curve: list[dict[str, Any]], target: float) -> tuple[float | None, float | None]:
    """Epochs up to the first trial that reached ``target``, and the same plus those of the
    next trial to end (an upper bound: it ran beside it in the other slot)."""
    for i, point in enumerate(curve):
        if (point["trial_dev_f1"] or 0.0) >= target - 1e-12:
            later = curve[i + 1]["epochs"] if i + 1 < len(curve) else 0.0
            return point["cum_epochs"], point["cum_epochs"] + (later or 0.0)
    return None, None


def without_baselines(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``curve`` with its baselines' points taken out and their epochs out of the counts."""
    out, epochs = [], 0.0
    for point in curve:
        if point.get("baseline"):
            continue
        epochs += point["epochs"] or 0.0
        out.append({**point, "cum_epochs": epochs})
    return out


def seed_row(doc: dict[str, Any], random: dict[str, Any] | None = None,
             drop_baselines: bool = False) -> dict[str, Any]:
    """One seed's figures from one benchmark document; ``random`` replaces its random arm,
    and ``drop_baselines`` scores the default arm's curve without its baselines."""
    default, random = doc["arms"]["default"], random or doc["arms"]["random"]
    if drop_baselines:
        curve = without_baselines(default["curve"])
        default = {**default, "curve": curve, "epochs": curve[-1]["cum_epochs"] if curve else 0.0}
    target, epochs = random["best_dev_f1"], random["epochs"]
    reach, upper = _reach(default["curve"], target)
    third = max((p["trial_dev_f1"] or 0.0 for p in default["curve"] if p["cum_epochs"] <= epochs / 3 + 1e-9),
                default=0.0)
    return {
        "seed": doc["settings"]["seed"],
        "random_seed": doc["settings"].get("random_seed", doc["settings"]["seed"]),
        "random_best_dev": random["best_dev_f1"], "random_test": random["test_f1"], "random_epochs": epochs,
        "default_best_dev": default["best_dev_f1"], "default_test": default["test_f1"],
        "default_epochs": default["epochs"],
        "best_in_third": round(third, 4), "margin": round(third - target, 4),
        "share": round(reach / epochs, 3) if reach is not None else None,
        "share_upper": round(upper / epochs, 3) if upper is not None else None,
        "met": reach is not None and reach <= epochs / 3 + 1e-9,
        "met_upper": upper is not None and upper <= epochs / 3 + 1e-9,
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
    p.add_argument("--random-arms", metavar="TEMPLATE",
                   help="take each seed's random arm from this file instead, {seed} standing for the seed "
                        "(for default-only runs, --arms default)")
    p.add_argument("--drop-baselines", action="store_true",
                   help="score the default arms without their baselines' points and epochs (arithmetic, not a run)")
    args = p.parse_args(argv)
    docs = {f: json.loads(f.read_text()) for f in args.files}
    # A summary written by --out beside the seeds' files matches a loose glob (…_s*.json).
    odd = [str(f) for f, doc in docs.items() if not isinstance(doc, dict) or "arms" not in doc]
    if odd:
        p.error(f"{', '.join(odd)}: not a bench_search_efficiency.py result (no 'arms'); pass only the seeds' "
                "files, e.g. …_s[0-9]*.json")
    randoms = {f: _random_arm(p, args.random_arms, f, doc) for f, doc in docs.items()}
    rows = sorted((seed_row(doc, randoms[f], args.drop_baselines) for f, doc in docs.items()), key=lambda r: r["seed"])
    total = summarize(rows)
    print("| seed | default: best dev (test) | epochs | random: best dev (test) | epochs | best in a third (margin) "
          "| reached at | upper |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        share = f"**{r['share']}**" if r["met"] else (r["share"] if r["share"] is not None else "never")
        upper = r["share_upper"] if r["share_upper"] is not None else "never"
        print(f"| {r['seed']} | {r['default_best_dev']:.3f} ({r['default_test']:.3f}) | {r['default_epochs']:g} | "
              f"{r['random_best_dev']:.3f} ({r['random_test']:.3f}) | {r['random_epochs']:g} | "
              f"{r['best_in_third']:.3f} ({r['margin']:+.3f}) | {share} | {upper} |")
    print()
    print(json.dumps(total, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps({"seeds": rows, "total": total}, indent=2) + "\n")


def _random_arm(p: argparse.ArgumentParser, template: str | None, f: Path,
                doc: dict[str, Any]) -> dict[str, Any] | None:
    """The random arm ``template`` names for ``doc``'s seed (None: the document's own)."""
    if template is None:
        if "random" not in doc["arms"]:
            p.error(f"{f} has no random arm (run with --arms default?); "
                    "name the runs to score it against with --random-arms 'PATH_{seed}.json'")
        return None
    path = Path(template.format(seed=doc["settings"]["seed"]))
    if not path.is_file():
        p.error(f"--random-arms {template!r}: {path} does not exist")
    other = json.loads(path.read_text())
    if "random" not in other.get("arms", {}):
        p.error(f"--random-arms {template!r}: {path} has no random arm")
    return other["arms"]["random"]


if __name__ == "__main__":
    main()
