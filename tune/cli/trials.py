"""``nerkit trials NAME``: the trial table of a search, filtered and sorted.

Each run re-reads Ray's state of the experiment and rewrites ``trials.parquet`` and
``history.parquet`` beside it, so a running or interrupted search is shown as it is now.
"""

from __future__ import annotations

import json
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from nerkit.cli import err_console
from tune.cli.trial_views import compact_view, missing, print_whole

# Not the shared soft-wrapped console: its tables size themselves to the terminal, or
# piped to the table's whole width (tune.cli.trial_views).
console = Console()

#: The history columns `--history` shows in a terminal without --columns.
#: A learning curve and a collapse (entity_pred_ratio near 0 while gold_entity_prob
#: falls) read from these, and they fit an 80-column terminal.
HISTORY_VIEW = ("trial_id", "eval_index", "epoch", "dev_f1", "entity_pred_ratio", "gold_entity_prob")


def _plain_value(value):
    """numpy scalars → Python numbers for json (NaN is handled by _records)."""
    return value.item() if hasattr(value, "item") else str(value)


def _records(df) -> list[dict]:
    """Rows as dicts at full float precision, with missing values as None (JSON null)."""
    return [{k: (None if missing(v) else v) for k, v in row.items()} for row in df.astype(object).to_dict("records")]


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
        from tune.parquet import TRIALS_FILE, frames, write_tables
        from tune.storage import join
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
            write_tables(tables, newer_only=True)  # never over the search's own, read later
        except OSError as exc:
            # Reading needs no write access: show the tables, say they were not saved.
            err_console.print(f"[yellow]warning:[/] could not write {escape(f'{join(exp, TRIALS_FILE)} ({exc})')}; "
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
            print_whole(df, console, err_console)
            if history and not query.columns:
                err_console.print(f"columns shown: {', '.join(df.columns)}; the others (losses, collapsed, "
                                  "per-type F1, tokens/s, …) with --columns a,b,… or --csv / --json",
                                  highlight=False, soft_wrap=True)
        else:
            table, legend, dropped = compact_view(df, console, console.width if console.is_terminal else None)
            console.print(table)
            if dropped:
                err_console.print(f"[yellow]note:[/] left out for the terminal's width: {', '.join(dropped)}; "
                                  "see them in a wider terminal, with --columns a,b,… or with --csv / --json",
                                  highlight=False, soft_wrap=True)
            if legend:
                console.print(f"searched: {legend}")
            console.print("ratio: entity_pred_ratio (share of tokens predicted as entities) at the last "
                          "evaluation; unfinished: running, or stopped with the search (--resume)",
                          highlight=False, soft_wrap=True)
            from tune.summary import unfinished

            # A search stopped part-way has rows only for the trials it created: "4 of 4"
            # read as done where 8 were planned.
            planned = unfinished(tables)["not_started"]
            more = f" ({planned} more planned, not started yet)" if planned else ""
            console.print(f"{len(df)} of {len(trials_df)} trials{more}; tables in {escape(str(exp))}/trials.parquet, "
                          "history.parquet", highlight=False, soft_wrap=True)
