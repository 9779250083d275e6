"""``nerkit doctor``: check a dataset before training (a thin wrapper over nerkit.doctor)."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from nerkit.cli.options import (DataOption, DevFileOption, FormatOption, LabelNamesOption, OnInvalidOption,
                                SplitSeedOption, TestFileOption, TrainFileOption, parse_label_names)
from nerkit.model import DEFAULT_MAX_LENGTH

_STYLE = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor_cmd(
        data: Optional[str] = typer.Argument(
            None, help="Data file or directory (default: the bundled corpus)."
        ),
        model: Optional[str] = typer.Option(
            None, "--model",
            help="Model name or path: its tokenizer is used and its labels compared with the data's.",
        ),
        data_opt: DataOption = None,
        train_file: TrainFileOption = None,
        dev_file: DevFileOption = None,
        test_file: TestFileOption = None,
        fmt: FormatOption = None,
        on_invalid: OnInvalidOption = None,
        split_seed: SplitSeedOption = None,
        label_names: LabelNamesOption = None,
        max_length: int = typer.Option(
            DEFAULT_MAX_LENGTH, "--max-length", help="Subword budget per record, as in training."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Check data format, BIO tags, alignment, label balance and the metric path.

        Exits with status 1 when any check fails.
        """
        from nerkit.doctor import run_doctor

        # --data as train and search take it, so their data options copy over as they are.
        if data is not None and data_opt is not None and data != data_opt:
            raise typer.BadParameter(f"DATA is {data!r} and --data is {data_opt!r}; give the data once",
                                     param_hint="'--data'")
        data = data if data is not None else data_opt

        # Only the options given: run_doctor's defaults are DataConfig's.
        given = {k: v for k, v in (("format", fmt), ("on_invalid", on_invalid), ("split_seed", split_seed))
                 if v is not None}
        report = run_doctor(
            data, model=model, max_length=max_length, label_names=parse_label_names(label_names),
            train=train_file, dev=dev_file, test=test_file, **given,
        )
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        else:
            _print_report(report)
        if not report.ok:
            raise typer.Exit(1)


def _print_report(report) -> None:
    console = Console(highlight=False)
    console.print(Text(f"nerkit doctor: {report.data} (tokenizer: {report.model})", style="bold"))
    for check in report.checks:
        label, style = _STYLE[check.status]
        console.print(Text.assemble("\n", (f"[{label}]", style), " ", (check.name, "bold")))
        # Text objects: subwords like [CLS] must not be read as rich markup; soft_wrap
        # keeps "file:line" messages on one line for copy-paste.
        console.print(Text(_indent(check.detail)), soft_wrap=True)
    failed = [c.name for c in report.checks if c.status == "fail"]
    summary = f"\n{len(failed)} check(s) failed: {', '.join(failed)}" if failed else "\nall checks passed"
    console.print(Text(summary, style="bold red" if failed else "bold green"))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
