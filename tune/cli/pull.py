"""``nerkit pull URI/<model-name>[@vN|@latest] --to DIR``: download a verified model version."""

from __future__ import annotations

import typer

from nerkit.cli import console, err_console, exit_on_sigterm
from nerkit.model_files import MANIFEST_FILE


def register(app: typer.Typer) -> None:
    @app.command("pull")
    def pull_cmd(
        ref: str = typer.Argument(..., help="<registry>/<model-name>\\[@vN|@latest] (default @latest)."),
        # str, not Path: typer reads an empty --to as ".", the current directory.
        to: str = typer.Option(..., "--to", help="Destination directory (must be absent or empty)."),
        force: bool = typer.Option(False, "--force",
                                   help="Replace an earlier pull in --to (it holds manifest.json) after verifying."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document (the version and where it is)."),
    ) -> None:
        """Download a promoted model, verify every file's sha256 and size, then move it into place.

        Exit status: 0 pulled; 1 an I/O failure; 2 a bad reference or --to; 3 the registry's
        copy failed verification (nothing written)."""
        import json

        from rich.markup import escape

        from tune.model_card import try_command
        from tune.pull import PullError, pull

        try:
            with exit_on_sigterm():  # a killed pull removes its partial download
                dest = pull(ref, to, force=force)
        except PullError as exc:
            # Its own exit status: the registry's copy failed verification (3), not a
            # mistyped reference (2) or an I/O failure (1).
            err_console.print(f"[bold red]verification failed:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(3) from None
        manifest = json.loads((dest / MANIFEST_FILE).read_text(encoding="utf-8"))
        version = manifest.get("version")
        if as_json:
            typer.echo(json.dumps({"ref": ref, "model_name": manifest.get("model_name"), "version": version,
                                   "dest": str(dest), "data_fingerprint": manifest.get("data_fingerprint"),
                                   "test_metrics": manifest.get("test_metrics"),
                                   "try": try_command(manifest, str(dest))}, indent=2, default=str))
            return
        # markup=False: paths are text, not rich markup.
        console.print(f"pulled {ref} (version {version}) into {dest} (all files verified)", highlight=False,
                      markup=False)
        console.print(f"try it: {try_command(manifest, str(dest))}", highlight=False, markup=False)
