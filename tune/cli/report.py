"""``nerkit report NAME``: a self-contained HTML report of a search."""

from __future__ import annotations

from typing import Optional

import typer

from nerkit.cli import console


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        name: str = typer.Argument(..., help="Experiment name (nerkit search --name)."),
        storage: str = typer.Option("runs", "--storage", help="Where the search stored it."),
        out: Optional[str] = typer.Option(None, "--out", help="Output file (default: <experiment>/report.html)."),
    ) -> None:
        """Learning curves, parameter effects and importances, compute spent, baselines vs best."""
        from tune.report import write_report
        from tune.settings import experiment_path

        dest = write_report(experiment_path(name, storage), out)
        console.print(f"report written to {dest}", highlight=False, markup=False)  # a path, not markup
