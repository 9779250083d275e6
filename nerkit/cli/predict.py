"""``nerkit predict``: entities with character spans from a saved model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from nerkit.errors import not_utf8_line


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        texts: Optional[List[str]] = typer.Argument(None, help="Sentences to tag."),
        # A string, not a Path: "./nosuch" must stay a path the user gave, not become "nosuch", a hub name.
        model: str = typer.Option(..., "--model", "-m", help="A model directory (nerkit train / nerkit pull), "
                                  "bundled-minilm, or a hub name."),
        file: Optional[Path] = typer.Option(
            None, "--file", "-f", help="A file with one sentence per line ('-': standard input); every line is a sentence."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per sentence."),
        device: str = typer.Option("auto", "--device"),
        split: str = typer.Option("text", "--split", help="How sentences split into words: 'text' as the readers "
                                  "split a record's text; 'spaces' at whitespace only, for text split beforehand "
                                  "as pre-split (CoNLL) training data was ('3.5', 'AT&T' stay whole)."),
    ) -> None:
        """Tag sentences and print entities with character spans and scores."""
        from nerkit.predict import Predictor

        lines = list(texts or [])
        if file is not None:
            lines += _read_lines(file)  # an empty file is no sentence: no output, exit 0
        elif not lines:
            raise ValueError("no sentences given; pass them as arguments or with --file")
        predictor = Predictor.from_dir(model, device=device, split=split)
        for text, ents in zip(lines, predictor.predict(lines)):
            if as_json:
                typer.echo(json.dumps({"text": text, "entities": [e.to_dict() for e in ents]}, ensure_ascii=False))
                continue
            # Plain echo, not rich: the sentence is printed as given (rich turned ":pizza:"
            # into an emoji, tabs into spaces and wrapped long lines), so the printed
            # [start:end] spans index what is shown.
            typer.echo(text)
            if not ents:
                typer.echo("  (no entities)")
            for e in ents:
                typer.echo(f"  {e.label:<6} {e.text!r:<24} [{e.start}:{e.end}]  {e.score:.3f}")


def _read_lines(file: Path) -> list[str]:
    """Every line of ``file`` (``-``: standard input), so --json output lines up with the
    input line for line; only a final newline ends the last line instead of adding one."""
    if str(file) == "-":
        stdin = sys.stdin
        source, data = "standard input", (stdin.buffer.read() if hasattr(stdin, "buffer")
                                          else stdin.read().encode("utf-8"))
    elif file.exists() and not file.is_dir():  # pipes and /dev/stdin are not regular files
        source, data = str(file), file.read_bytes()
    elif file.is_dir():
        raise ValueError(f"{file} is a directory; give a text file with one sentence per line, or - for stdin")
    else:
        raise ValueError(f"{file}: no such file; give a text file with one sentence per line, or - for stdin")
    # Only \n ends a line: U+2028 or a form feed inside a sentence stays in it. Decoded
    # line by line, so a bad byte is reported where it is.
    raw = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    lines = []
    for number, line in enumerate(raw, start=1):
        try:
            lines.append(line.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as exc:
            raise not_utf8_line(source, number, line, exc) from None
    return lines[:-1] if lines and lines[-1] == "" else lines
