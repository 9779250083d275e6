"""``nerkit pull URI/<model-name>[@vN|@latest] --to DIR``: download a verified model version."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("pull")
    def pull_cmd(
        ref: str = typer.Argument(..., help="<registry>/<model-name>\\[@vN|@latest] (default @latest)."),
        # str, not Path: typer reads an empty --to as ".", the current directory.
        to: str = typer.Option(..., "--to", help="Destination directory (must be absent or empty)."),
        force: bool = typer.Option(False, "--force",
                                   help="Replace an earlier pull in --to (it holds manifest.json) after verifying."),
    ) -> None:
        """Download a promoted model, verify every file's sha256 and size, then move it into place."""
        from tune.pull import pull

        import json

        dest = pull(ref, to, force=force)
        version = json.loads((dest / "manifest.json").read_text(encoding="utf-8")).get("version")
        console.print(f"pulled {ref} (version {version}) into {dest} (all files verified)", highlight=False)
        console.print(f"try it: nerkit predict --model {dest} \"tushar se 2 misal pav mangwao\"", highlight=False)
