"""``nerkit promote NAME --registry URI``: publish a search's best model after test-split gates."""

from __future__ import annotations

import shlex

import typer
from rich.markup import escape

from nerkit.cli import console, err_console, exit_on_sigterm


def latest_note(before: int | None, version: int) -> str:
    """What promoting a model already published did to ``latest``: a rollback by hand
    (``latest`` set back to an older version) is undone, since latest only moves forward,
    and a release engineer must hear it."""
    if before is None:
        return "latest now points at it; it pointed nowhere before"
    if before < version:
        return f"latest moved from v{before} to it"
    if before == version:
        return "latest points at it already"
    return f"latest stays at v{before}, a newer version"


def register(app: typer.Typer) -> None:
    @app.command("promote")
    def promote_cmd(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Experiment name (nerkit search --name)."),
        registry: str = typer.Option(..., "--registry", help="Registry root: local dir, s3://… or gs://…"),
        model_name: str = typer.Option("ner", "--model-name", help="Model name under the registry."),
        metric: str = typer.Option("best_dev_f1", "--metric", help="Trial-table column to rank by (higher wins)."),
        confirm_seeds: int = typer.Option(0, "--confirm-seeds", help="Re-train the top-k configs with K new seeds."),
        top_k: int = typer.Option(None, "--top-k", help="Configs to confirm with --confirm-seeds (default 3)."),
        min_f1: float = typer.Option(0.0, "--min-f1", help="Refuse below this test F1."),
        min_entity_ratio: float = typer.Option(0.005, "--min-entity-ratio",
                                               help="Refuse below this test entity_pred_ratio (collapse), or at test F1 0; 0 turns both off."),
        storage: str = typer.Option("runs", "--storage", help="Where the search stored it."),
        allow_unfinished: bool = typer.Option(
            False, "--allow-unfinished", help="Publish the best so far of a search that has not ended."),
        trial: str = typer.Option(None, "--trial", help="Promote this trial (its trial_id) instead of the best."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document (what was published, and where)."),
        example: str = typer.Option(None, "--example", help="The sentence the model card and pull's 'try it' tag "
                                    "(default: a short test sentence; '' for none, where test text must not be shared)."),
    ) -> None:
        """Test the best trial's model on the test split and publish it as <registry>/<model-name>/v<N>.

        Promoting the model the newest version already holds publishes nothing new.

        Exit status: 0 published (or already published); 1 an I/O failure; 2 a bad option, search or model files;
        3 refused by a gate or for lack of a test split (nothing written)."""
        from tune.promote import PromotionRefused, promote

        try:
            # A killed promote removes its staged version and its temporary model.
            with exit_on_sigterm():
                result = promote(name, registry, model_name=model_name, metric=metric, confirm_seeds=confirm_seeds,
                                 top_k=top_k, min_f1=min_f1, min_entity_ratio=min_entity_ratio, storage=storage,
                                 allow_unfinished=allow_unfinished, trial=trial, example=example)
        except PromotionRefused as exc:
            err_console.print(f"[bold red]promotion refused:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            # Its own exit status: a release pipeline tells "model not good enough" (3) from
            # a bad option or search (2) and an I/O failure (1).
            raise typer.Exit(3) from None
        except ValueError as exc:  # after PromotionRefused, a ValueError too
            # In the options' words (--top-k is 0, not top_k is 0): the user typed no top_k.
            from nerkit.cli.options import as_flag

            worded = as_flag(str(exc), [k for k in ctx.params if k != "name"])
            if worded == str(exc):
                raise  # not about an option: as raised
            raise ValueError(worded) from None
        ref = f"{result.uri.rsplit('/', 1)[0]}@v{result.version}"
        if as_json:
            import json

            manifest = result.manifest
            typer.echo(json.dumps({
                "published": result.published, "version": result.version, "uri": result.uri, "ref": ref,
                "latest_before": result.latest_before, "trial_id": manifest.get("trial_id"),
                "test_metrics": manifest.get("test_metrics"), "dev_metrics": manifest.get("dev_metrics"),
                "selection": manifest.get("selection"), "data_fingerprint": manifest.get("data_fingerprint"),
            }, indent=2, default=str))
            return
        test = result.manifest.get("test_metrics", {})
        scores = f"(test F1 {test['f1']:.4f}, entity_pred_ratio {test['entity_pred_ratio']:.4f})" if test else ""
        if result.published:
            console.print(f"[bold green]promoted[/] trial {result.manifest['trial_id']} as {escape(result.uri)} "
                          f"{scores}",
                          highlight=False)
        else:
            console.print(f"[bold green]already published[/]: trial {result.manifest.get('trial_id')}'s model is "
                          f"{escape(result.uri)} {scores}, which holds the same files; nothing new was written "
                          f"({latest_note(result.latest_before, result.version)})", highlight=False)
        console.print(f"pull it with: nerkit pull {shlex.quote(ref)} --to DIR", highlight=False, markup=False)
