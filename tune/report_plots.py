"""The search report's figures, as ``data:image/png;base64,…`` URIs.

Figures are drawn on matplotlib's Agg canvas through the object API (no pyplot), so
building a report neither needs a display nor changes the process's backend.
"""

from __future__ import annotations

import base64
import io
import math
import random
from collections import defaultdict
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

#: How each way of ending is drawn: (line style, marker). Running trials have reason "".
STYLES = {
    "completed": ("-", "o"),
    "asha": ("--", "s"),
    "collapsed": (":", "X"),
    "diverged": ("-.", "v"),
    "error": ((0, (1, 1)), "D"),
    "": ("-", "."),
}
REASON_COLORS = {"completed": "tab:green", "asha": "tab:blue", "collapsed": "tab:red",
                 "diverged": "tab:purple", "error": "black", "": "tab:gray"}


def to_data_uri(fig: Figure) -> str:
    """A figure as a PNG data URI (embedded in HTML, the report stays one file)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _reason(row: dict[str, Any]) -> str:
    return row.get("stop_reason") or ""


def _curves(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """History rows per trial, one per evaluation (a resumed trial's later report wins)."""
    by_trial: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for h in history:
        # A diverged trial's stand-in report is no evaluation (tune.tables leaves it out
        # of the history it writes; histories read back from older tables may hold it).
        if h.get("epoch") is not None and h.get("eval_index") is not None and h.get("stop_reason") != "diverged":
            by_trial[h["trial_id"]][int(h["eval_index"])] = h
    return {t: [rows[i] for i in sorted(rows)] for t, rows in by_trial.items()}


def learning_curves(trials: list[dict[str, Any]], history: list[dict[str, Any]],
                    best_id: str | None, collapse_eps: float | None) -> str:
    """Dev F1, entity_pred_ratio and gold_entity_prob against epoch, one line per trial,
    styled by stop reason. The third panel is what the collapse guard reads besides the
    ratio: an all-'O' trial whose line there still climbs is spared (tune.guard)."""
    fig = Figure(figsize=(15, 4.2))
    ax_f1, ax_ratio, ax_prob = fig.subplots(1, 3)
    curves = _curves(history)
    colors = [f"C{i % 10}" for i in range(len(trials))]
    trial_handles = []
    for row, color in zip(trials, colors):
        points = curves.get(row["trial_id"], [])
        if not points:
            continue
        style, marker = STYLES.get(_reason(row), STYLES[""])
        width = 2.6 if row["trial_id"] == best_id else 1.2
        epochs = [p["epoch"] for p in points]
        for ax, key in ((ax_f1, "dev_f1"), (ax_ratio, "entity_pred_ratio"), (ax_prob, "gold_entity_prob")):
            # None (a search from before gold_entity_prob existed) leaves a gap.
            values = [float("nan") if p.get(key) is None else p[key] for p in points]
            ax.plot(epochs, values, linestyle=style, marker=marker, color=color, linewidth=width, markersize=5)
        label = _literal(row["trial_id"] + (f" ({row['baseline']})" if row.get("baseline") else ""))
        trial_handles.append(Line2D([], [], color=color, linewidth=width, label=label))
    if collapse_eps is not None:
        ax_ratio.axhline(collapse_eps, color="tab:red", linewidth=0.8, alpha=0.6)
        ax_ratio.annotate("collapse eps", (0, collapse_eps), xycoords=("axes fraction", "data"),
                          fontsize=7, color="tab:red", va="bottom")
    ax_f1.set(xlabel="epoch", ylabel="dev F1", title="dev F1 per evaluation")
    ax_ratio.set(xlabel="epoch", ylabel="entity_pred_ratio", title="predicted entity tokens / all tokens")
    ax_prob.set(xlabel="epoch", ylabel="gold_entity_prob", title="P(entity label) at gold entity tokens")
    reasons = sorted({_reason(r) for r in trials}, key=list(STYLES).index)
    style_handles = [Line2D([], [], color="0.3", linestyle=STYLES[r][0], marker=STYLES[r][1],
                            label=r or "unfinished") for r in reasons]
    # Trial colours only help while they can be told apart.
    handles = style_handles + (trial_handles if len(trial_handles) <= 10 else [])
    fig.subplots_adjust(right=0.85, wspace=0.3)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.86, 0.5), fontsize=8,
               title="stop reason / trial (thick: best)", title_fontsize=8)
    return to_data_uri(fig)


def _is_categorical(spec: dict[str, Any], values: list[Any]) -> bool:
    return spec.get("kind") == "choice" or any(not isinstance(v, (int, float)) or isinstance(v, bool)
                                               for v in values)


def _literal(text: str) -> str:
    """``text`` shown as written: matplotlib reads ``$…$`` as math (a baseline named
    ``team $recipe$`` came out in italics, and an unclosed one ended the report)."""
    return text.replace("$", r"\$")


def param_scatter(trials: list[dict[str, Any]], params: list[dict[str, Any]]) -> str | None:
    """Best dev F1 against each searched parameter (categories jittered), marked by stop
    reason; None when no trial has a score to plot."""
    if not params or not any(r.get("best_dev_f1") is not None for r in trials):
        return None
    ncols = min(3, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    jitter = random.Random(0)  # the same report twice gives the same picture
    for ax, spec in zip(axes, params):
        column = f"param_{spec['name']}"
        rows = [r for r in trials if r.get(column) is not None and r.get("best_dev_f1") is not None]
        values = [r[column] for r in rows]
        if _is_categorical(spec, values):
            cats = [c for c in (spec.get("values") or []) if c in values] or sorted(set(values), key=str)
            cats += sorted({v for v in values if v not in cats}, key=str)
            xs = [cats.index(v) + jitter.uniform(-0.18, 0.18) for v in values]
            ax.set_xticks(range(len(cats)), [_literal(str(c)) for c in cats])
            ax.set_xlim(-0.6, len(cats) - 0.4)
        else:
            xs = values
            if spec.get("kind") == "loguniform" and all(v > 0 for v in values):
                ax.set_xscale("log")
                # Matplotlib's default labels every minor tick as 3×10⁻¹ and they overlap.
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
        for reason in STYLES:
            pts = [(x, r["best_dev_f1"]) for x, r in zip(xs, rows) if _reason(r) == reason]
            if pts:
                ax.scatter(*zip(*pts), marker=STYLES[reason][1], color=REASON_COLORS[reason],
                           label=reason or "unfinished", s=28)
        ax.set(title=spec["name"], ylabel="best dev F1")
        ax.tick_params(labelsize=8)
    for ax in axes[len(params):]:
        ax.set_visible(False)
    seen = {lab: h for ax in axes[: len(params)] for h, lab in zip(*ax.get_legend_handles_labels())}
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="upper center", ncols=len(seen), fontsize=8,
                   bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return to_data_uri(fig)


def importance_bars(importances: dict[str, float]) -> str:
    """Horizontal bars of parameter importances, largest on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(6, 0.4 * len(items) + 1))
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set(xlabel="importance (normalised)", title="parameter importance for dev F1")
    return to_data_uri(fig)
