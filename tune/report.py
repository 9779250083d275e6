"""The search report: one self-contained HTML file (plots embedded as PNG data URIs).

Sections: what was searched and how trials ended; the best trial; baselines against it;
learning curves (dev F1, entity_pred_ratio and gold_entity_prob per epoch, line style
by stop reason);
dev F1 against each searched parameter; parameter importances (tune.importance: Optuna's
evaluator over the finished trials' best dev F1); compute spent
per stop reason; the best trial's F1 per entity type. Every piece of text is escaped,
so trial errors or parameter values cannot inject markup.

Example:
    >>> from tune.report import write_report     # doctest: +SKIP
    >>> write_report("runs/s1")                   # doctest: +SKIP
    'runs/s1/report.html'
"""

from __future__ import annotations

import json
import time
from collections import Counter
from html import escape
from typing import Any

from tune.importance import param_importances
from tune.report_plots import importance_bars, learning_curves, param_scatter
from tune.settings import planned_baselines
from tune.stop_reasons import REASONS, UNFINISHED, shown_reason
from tune.storage import is_dir, join, write_text
from tune.summary import best_row, checkpoint_not_best, unfinished
from tune.tables import SCHEMA_VERSION, TrialTables, collect

REPORT_FILE = "report.html"
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right;font-size:13px}th{background:#f3f3f3}td.l,th.l{text-align:left}
img{max-width:100%}.note{color:#666;font-size:13px}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"""


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are text (left-aligned), the rest numbers."""
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(_fmt(v))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(uri: str | None, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">' if uri else f'<p class="note">no data for {escape(alt)}</p>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def compute_spent(trials: list[dict[str, Any]]) -> list[list[Any]]:
    """Rows ``[stop reason, trials, epochs, wall seconds, share of wall time]`` per reason."""
    groups = {r: [0, 0.0, 0.0] for r in (*REASONS, UNFINISHED)}
    for t in trials:
        g = groups[shown_reason(t)]
        g[0] += 1
        g[1] += t.get("epochs_trained") or 0.0
        g[2] += t.get("wall_time_s") or 0.0
    total = sum(g[2] for g in groups.values()) or 1.0
    rows = [[r, n, ep, wall, wall / total] for r, (n, ep, wall) in groups.items() if n]
    rows.append(["total", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows), 1.0])
    return rows


def _baselines(trials: list[dict[str, Any]], best: dict[str, Any] | None, planned: int = 0) -> str:
    """The baseline trials against the best; ``planned``: how many the search enqueued."""
    base = [t for t in trials if t.get("baseline")]
    if not base:
        # A search stopped before its first trials enqueued its baselines all the same.
        return _note(f"none of the {planned} baseline(s) this search planned has started" if planned
                     else "no baselines in this search")
    ref = best["best_dev_f1"] if best else None
    rows = [[f"best trial {best['trial_id']}", shown_reason(best), best["best_dev_f1"], best["best_epoch"],
             best["epochs_trained"], 0.0]] if best else []
    for t in base:
        gap = ref - t["best_dev_f1"] if ref is not None and t["best_dev_f1"] is not None else None
        rows.append([f"{t['baseline']} ({t['trial_id']})", shown_reason(t),
                     t["best_dev_f1"], t["best_epoch"], t["epochs_trained"], gap])
    table = _table(["trial", "stop reason", "best dev F1", "at epoch", "epochs trained", "best minus this"],
                   rows, left=2)
    cut = sorted({t["baseline"] for t in base if t["stop_reason"] in ("asha", "collapsed")})
    if cut:
        # A pruned baseline is scored at the epoch it was stopped, not at the full budget
        # (the bundled corpus' plain CE collapses at epoch 1 and recovers by epoch 3).
        table += _note(f"{', '.join(cut)} stopped early (ASHA or the collapse guard): its F1 is what it "
                       "reached in the epochs shown, not what it would reach at the full budget. To compare "
                       "at the full budget, train it alone (nerkit train) or search the seed_recipe space.")
    return table


def _not_ended(tables: TrialTables, left: dict[str, int]) -> str:
    """A note when the search has not ended (running, or stopped for --resume), else nothing;
    ``left`` is :func:`tune.summary.unfinished` of ``tables``."""
    if not left["stopped"] and not left["not_started"]:
        return ""
    name = tables.record["settings"]["name"]
    return _note(f"this search has not ended: {left['stopped']} trial(s) unfinished, {left['not_started']} never "
                 f"started; if it is not running, nerkit search --resume {name} (with its --storage) continues it")


def _best_section(best: dict[str, Any] | None, searched: list[str], tables: TrialTables,
                  left: dict[str, int]) -> str:
    if best is None:
        if tables.trials and not left["stopped"] and not left["not_started"]:
            # Ended, and no trial scored: "yet" would say to wait.
            failed = Counter(shown_reason(t) for t in tables.trials)
            name = tables.record["settings"]["name"]
            return _note("no trial reported a dev evaluation, and the search has ended ("
                         + ", ".join(f"{n} {r}" for r, n in sorted(failed.items()))
                         + f"): nerkit trials {name} --stop-reason error,diverged --columns trial_id,error shows why")
        return _note("no trial has reported a dev evaluation yet")
    facts = [["trial", best["trial_id"]], ["stop reason", shown_reason(best)],
             ["best dev F1", best["best_dev_f1"]], ["at epoch", best["best_epoch"]],
             ["entity_pred_ratio there", best["best_entity_pred_ratio"]],
             ["entity:O weight ratio", best.get("entity_o_ratio")], ["checkpoint", best["checkpoint"] or "-"]]
    lag = checkpoint_not_best(best)
    if lag:
        facts.append(["checkpoint holds", lag])  # what promotion would publish
    facts += [[f"param {p}", best.get(f"param_{p}")] for p in searched if best.get(f"param_{p}") is not None]
    per_type = sorted((k.removeprefix("best_f1_"), v) for k, v in best.items() if k.startswith("best_f1_"))
    return (_table(["", "value"], facts, left=2) + "<h3>F1 per entity type (dev, best evaluation)</h3>"
            + (_table(["type", "F1"], [list(x) for x in per_type]) if per_type else _note("no per-type scores")))


def _importance_section(tables: TrialTables) -> str:
    importances, notes = param_importances(tables)
    html = "".join(_note(n) for n in notes)
    if importances is None:
        return html
    rows = [[k, v] for k, v in sorted(importances.items(), key=lambda kv: -kv[1])]
    plot = _img(importance_bars(importances), "parameter importances")
    return plot + _table(["parameter", "importance"], rows) + html


def build_report(tables: TrialTables) -> str:
    """The report of one experiment as an HTML string (see module doc)."""
    record, trials = tables.record, tables.trials
    name = record["settings"]["name"]
    params = [p for p in record["space"]["params"] if p["kind"] != "fixed"]
    searched = [p["name"] for p in params]
    best = best_row(tables)
    left = unfinished(tables)
    eps = record["space"].get("guard", {}).get("eps")
    counts = {r: sum(1 for t in trials if shown_reason(t) == r) for r in (*REASONS, UNFINISHED)}
    versions = ", ".join(f"{k} {v}" for k, v in sorted(record.get("versions", {}).items()))
    head = [
        ["experiment", tables.experiment], ["created", record.get("created", "-")],
        ["description", record["space"].get("description", "")], ["searched", ", ".join(searched)],
        ["trials", f"{len(trials)} of {record['settings']['trials']} planned"], ["ended by", "  ".join(f"{k} {v}" for k, v in counts.items() if v) or "-"],
        ["budget (epochs)", json.dumps(record["space"].get("budget", {}))], ["versions", versions],
    ]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>nerkit search {escape(name)}</title>",
        f"<style>{_CSS}</style></head><body><h1>Search report: {escape(name)}</h1>",
        _table(["", ""], head, left=2), _not_ended(tables, left),
        "<h2>Best trial</h2>", _best_section(best, searched, tables, left),
        "<h2>Baselines against the best trial</h2>",
        _baselines(trials, best, len(planned_baselines(record["space"]["baselines"], record["settings"]["baselines"],
                                                       record["settings"]["trials"]))),
        "<h2>Learning curves</h2>",
        _note("gold_entity_prob: the probability the model puts on entity labels at dev tokens that are "
              "entities; the collapse guard does not count an all-'O' evaluation where it still rose"),
        _img(learning_curves(trials, tables.history, best and best["trial_id"], eps) if tables.history else None,
             "learning curves"),
        "<h2>Dev F1 against each searched parameter</h2>",
        _note("best dev F1 of each trial; categorical parameters are spread (jittered) around their category"),
        _img(param_scatter(trials, params), "parameter scatter"),
        "<h2>Parameter importances</h2>", _importance_section(tables),
        "<h2>Compute spent</h2>",
        _table(["stop reason", "trials", "epochs", "wall time (s)", "share of wall time"], compute_spent(trials)),
        f'<p class="note">generated {escape(time.strftime("%Y-%m-%d %H:%M:%S"))} by nerkit report '
        f"(trial-table schema {SCHEMA_VERSION})</p></body></html>",
    ]
    return "\n".join(parts)


def write_report(experiment_path: str, out: str | None = None) -> str:
    """Build the report of an experiment and write it (default ``<experiment>/report.html``).

    Returns:
        Where it was written (local path or object-store URI).

    Raises:
        ValueError: ``out`` is an existing directory (the message names the file to give).
    """
    if out is not None and is_dir(out):
        # Before the work: open() on a directory ends in "[Errno 21] Is a directory".
        raise ValueError(f"--out is {out!r}, which is a directory; give the report's file name, "
                         f"e.g. --out {out.rstrip('/')}/{REPORT_FILE}")
    html = build_report(collect(experiment_path))
    dest = out or join(experiment_path, REPORT_FILE)
    write_text(dest, html)
    return dest
