"""``nerkit trials NAME``: the trial table of a search, filtered and sorted.

Each run re-reads Ray's state of the experiment and rewrites ``trials.parquet`` and
``history.parquet`` beside it, so a running or interrupted search is shown as it is now.
"""

from __future__ import annotations

import json
import math
from typing import List, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

#: The history columns `--history` shows in a terminal without --columns.
#: A learning curve and a collapse (entity_pred_ratio near 0 while gold_entity_prob
#: falls) read from these, and they fit an 80-column terminal.
HISTORY_VIEW = ("trial_id", "eval_index", "epoch", "dev_f1", "entity_pred_ratio", "gold_entity_prob")


def _missing(value) -> bool:
    """None, pandas' NA or NaN: a cell with no value (shown "-", written as JSON null)."""
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _num(value, fmt: str) -> str:
    if _missing(value):
        return "-"
    if fmt == ".4g" and isinstance(value, float) and abs(value) >= 1e4:
        fmt = ".1f"  # a wall time of 12345.6 s, not 1.235e+04
    return format(value, fmt)


def _plain_value(value):
    """numpy scalars → Python numbers for json (NaN is handled by _records)."""
    return value.item() if hasattr(value, "item") else str(value)


def _records(df) -> list[dict]:
    """Rows as dicts at full float precision, with missing values as None (JSON null)."""
    return [{k: (None if _missing(v) else v) for k, v in row.items()} for row in df.astype(object).to_dict("records")]


def _short_names(columns: list[str]) -> dict[str, str]:
    """``param_learning_rate`` → ``lr`` (initials), unless two parameters share initials."""
    names = [c.removeprefix("param_") for c in columns]
    initials = ["".join(p[0] for p in n.split("_") if p) if "_" in n else n for n in names]
    if len(set(initials)) < len(initials):
        initials = names
    return dict(zip(columns, initials))


def _params(row, short: dict[str, str]) -> str:
    parts = []
    for column, label in short.items():
        value = row[column]
        if _missing(value):
            continue
        shown = format(value, ".2g") if isinstance(value, float) else str(value)
        parts.append(f"{label}={shown}")
    return " ".join(parts)


def _unended(row) -> str:
    """What a trial without a stop reason is doing. Ray's snapshot records a running trial
    as PENDING (as it does the trials of a stopped search), so one with evaluations is
    "unfinished" (running now, or left to --resume), one without is "pending"."""
    import pandas as pd

    from tune.trial_query import UNENDED_STATUSES

    status = str(row["status"]).lower()
    evaluated = not pd.isna(row["evaluations"]) and row["evaluations"] > 0
    return "unfinished" if status.upper() in UNENDED_STATUSES and evaluated else status


def _compact(df) -> tuple[Table, str]:
    """The default view (one line per trial with what decides between trials) and its legend.

    Seven columns in a light box fit an 80-column terminal: a baseline's name leads its
    searched values, the stop reason stands for the status (a running or pending trial has
    none), ``ratio`` is the last evaluation's entity_pred_ratio, and the parameters take
    the width that is left, folding.
    """
    short = _short_names([c for c in df.columns if c.startswith("param_")])
    # Wide enough for every id, whole (an id folded over two lines reads as two ids); a
    # baseline's name leads its searched values, which fold in the width left.
    id_width = max((len(str(i)) for i in df["trial_id"]), default=8)
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for title in ("trial", "stop", "searched", "best F1 @ ep", "ratio", "epochs", "wall s"):
        if title == "searched":
            t.add_column(title, overflow="fold", ratio=1, min_width=12)
        elif title == "trial":
            t.add_column(title, no_wrap=True, min_width=id_width, max_width=id_width)
        else:
            t.add_column(title, no_wrap=True)
    for _, r in df.iterrows():
        best = f"{_num(r['best_dev_f1'], '.4f')} @ {_num(r['best_epoch'], '.2f')}"
        searched = (f"({r['baseline']}) " if r["baseline"] else "") + _params(r, short)
        stop = str(r["stop_reason"] or _unended(r))
        t.add_row(str(r["trial_id"]), stop, searched, best, _num(r["last_entity_pred_ratio"], ".3f"),
                  _num(r["epochs_trained"], ".2f"), _num(r["wall_time_s"], ".1f"))
    legend = ", ".join(f"{v}={k.removeprefix('param_')}" for k, v in short.items() if v != k.removeprefix("param_"))
    return t, legend


def _plain(df) -> Table:
    import pandas as pd

    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in df.columns:
        # Never folded: a number split over two lines reads as two numbers, and an id so
        # split cannot be copied into `nerkit trials … --where` (_print_whole fits them).
        t.add_column(str(col), no_wrap=True, overflow="ellipsis", min_width=8 if col == "trial_id" else None)
    for _, r in df.iterrows():
        t.add_row(*(_num(v, ".4g") if isinstance(v, float) or v is pd.NA else str(v) for v in r.tolist()))
    return t


def _print_whole(table: Table) -> None:
    """Print ``table`` with every value whole. Piped, the lines take the width the table
    needs (rich's 80 columns folded numbers mid-value and gave some columns no width);
    in a terminal narrower than the table, values are cut with "…" and a note says how
    to see them."""
    need = console.measure(table, options=console.options.update_width(100_000)).maximum
    if need <= console.width:
        console.print(table)
    elif not console.is_terminal:
        Console(width=need, no_color=console.no_color).print(table)
    else:
        console.print(table)
        err_console.print(f"[yellow]note:[/] the table needs {need} columns and the terminal has {console.width}: "
                          "values cut are marked …; pick fewer with --columns, or use --csv / --json",
                          highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("trials")
    def trials_cmd(
        name: str = typer.Argument(..., help="Experiment name (nerkit search --name)."),
        storage: str = typer.Option("runs", "--storage", help="Where the search stored it."),
        sort: Optional[str] = typer.Option(None, "--sort", help="Column to sort by (default best_dev_f1, descending)."),
        asc: bool = typer.Option(False, "--asc", help="Sort ascending."),
        top: Optional[int] = typer.Option(None, "--top", help="Show the first N rows."),
        status: Optional[List[str]] = typer.Option(None, "--status", help="Ray status (repeatable or a,b)."),
        stop_reason: Optional[List[str]] = typer.Option(
            None, "--stop-reason", help="completed|asha|collapsed|diverged|error|unfinished (repeatable or a,b)."),
        where: Optional[List[str]] = typer.Option(
            None, "--where", help="Filter like \"param_o_weight < 0.5\" (repeatable; all must hold)."),
        columns: Optional[str] = typer.Option(None, "--columns", help="Comma list of columns to show."),
        history: bool = typer.Option(False, "--history", help="Show the per-evaluation history instead."),
        as_json: bool = typer.Option(False, "--json", help="Rows as a JSON list."),
        as_csv: bool = typer.Option(False, "--csv", help="Rows as CSV."),
    ) -> None:
        """Show a search's trials (or their history) from freshly written Parquet tables."""
        from tune.parquet import frames, write_tables
        from tune.tables import collect
        from tune.settings import experiment_path
        from tune.trial_query import TrialQuery, select_history, select_trials, split_list

        if as_json and as_csv:
            raise ValueError("--json and --csv were both given; pick one output format")
        query = TrialQuery(
            sort=sort, ascending=asc, top=top, status=split_list(status),
            stop_reasons=split_list(stop_reason), where=tuple(where or ()),
            columns=split_list([columns] if columns else None),
        )
        exp = experiment_path(name, storage)
        tables = collect(exp)
        trials_df, history_df = frames(tables)
        # The query first: a typo in it is an error before anything is written.
        df = select_history(history_df, trials_df, query) if history else select_trials(trials_df, query)
        try:
            write_tables(tables)
        except OSError as exc:
            # Reading needs no write access: show the tables, say they were not saved.
            err_console.print(f"[yellow]warning:[/] could not write {exp}/trials.parquet ({exc}); "
                              "showing the tables without saving them", highlight=False, soft_wrap=True)
        if as_json:
            typer.echo(json.dumps(_records(df), indent=2, default=_plain_value))
        elif as_csv:
            typer.echo(df.to_csv(index=False), nl=False)
        elif history or query.columns:
            if history and not query.columns:
                # All of them are in --csv/--json and history.parquet; these are what a
                # learning curve and a collapse are read from, and fit a terminal.
                df = df[[c for c in HISTORY_VIEW if c in df.columns]]
            _print_whole(_plain(df))
            if history and not query.columns:
                err_console.print(f"columns shown: {', '.join(df.columns)}; the others (losses, collapsed, "
                                  "per-type F1, tokens/s, …) with --columns a,b,… or --csv / --json",
                                  highlight=False, soft_wrap=True)
        else:
            table, legend = _compact(df)
            console.print(table)
            if legend:
                console.print(f"searched: {legend}")
            console.print("ratio: entity_pred_ratio (share of tokens predicted as entities) at the last "
                          "evaluation; unfinished: running, or stopped with the search (--resume)",
                          highlight=False, soft_wrap=True)
            console.print(f"{len(df)} of {len(trials_df)} trials; tables in {exp}/trials.parquet, history.parquet")
