"""``nerkit predict``: entities with character spans from a saved model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        texts: Optional[List[str]] = typer.Argument(None, help="Sentences to tag."),
        model: Path = typer.Option(..., "--model", "-m", help="A model directory (nerkit train / nerkit pull)."),
        file: Optional[Path] = typer.Option(None, "--file", "-f", help="A file with one sentence per line."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per sentence."),
        device: str = typer.Option("auto", "--device"),
    ) -> None:
        """Tag sentences and print entities with character spans and scores."""
        from nerkit.predict import Predictor

        lines = list(texts or [])
        if file is not None:
            if not file.is_file():
                raise ValueError(f"{file}: no such file; give a text file with one sentence per line")
            lines += [ln for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            raise ValueError("no sentences given; pass them as arguments or with --file")
        predictor = Predictor.from_dir(model, device=device)
        for text, ents in zip(lines, predictor.predict(lines)):
            if as_json:
                typer.echo(json.dumps({"text": text, "entities": [e.to_dict() for e in ents]}, ensure_ascii=False))
                continue
            console.print(f"[bold]{text}[/]", highlight=False)
            if not ents:
                console.print("  (no entities)")
            for e in ents:
                console.print(f"  {e.label:<6} {e.text!r:<24} [{e.start}:{e.end}]  {e.score:.3f}", highlight=False)
