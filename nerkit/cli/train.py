"""``nerkit train``: fine-tune one model (a thin wrapper over nerkit.train.train)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from nerkit.cli import console, err_console
from nerkit.cli.options import (DataOption, DevFileOption, FormatOption, LabelNamesOption, OnInvalidOption,
                                SplitSeedOption, TestFileOption, TrainFileOption, build_train_config, data_options,
                                located)

#: Evaluations in a row with entity_pred_ratio under collapse_eps before warning.
COLLAPSE_WARN_EVALS = 2


def warn_collapse_now(run: int) -> bool:
    """Whether a collapse ``run`` evaluations long is worth a warning: when it reaches
    COLLAPSE_WARN_EVALS, then each time it doubles (news once, not every line).

    >>> [n for n in range(1, 20) if warn_collapse_now(n)]
    [2, 4, 8, 16]
    """
    k, rest = divmod(run, COLLAPSE_WARN_EVALS)
    return k >= 1 and rest == 0 and k & (k - 1) == 0


def format_metrics_line(m: dict) -> str:
    return (f"epoch {m['epoch']:.2f}  step {m['step']}  loss {m['train_loss']:.4f}  "
            f"dev_loss {m['dev_loss']:.4f}  F1 {m['dev_f1']:.4f}  P {m['dev_precision']:.3f}  "
            f"R {m['dev_recall']:.3f}  acc {m['dev_token_accuracy']:.4f}  "
            f"entity_pred_ratio {m['entity_pred_ratio']:.4f} (gold {m['gold_entity_ratio']:.4f})  "
            f"{m['tokens_per_s']:.0f} tok/s")


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: DataOption = None,
        train_file: TrainFileOption = None,
        dev_file: DevFileOption = None,
        test_file: TestFileOption = None,
        fmt: FormatOption = None,
        on_invalid: OnInvalidOption = None,
        split_seed: SplitSeedOption = None,
        label_names: LabelNamesOption = None,
        output_dir: Path = typer.Option(Path("runs/train"), "--output-dir", "-o", help="Where the best model directory goes."),
        config_file: Optional[Path] = typer.Option(None, "--config", help="YAML file of training settings (options below override it)."),
        model: Optional[str] = typer.Option(None, "--model", help="HF name or path; default: the bundled MiniLM."),
        epochs: Optional[float] = typer.Option(None, "--epochs"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size"),
        learning_rate: Optional[float] = typer.Option(None, "--learning-rate", "--lr"),
        class_weights: Optional[bool] = typer.Option(None, "--class-weights/--no-class-weights", help="Off = uniform weights (strategy none, O weight 1, boost 1)."),
        loss: Optional[str] = typer.Option(None, "--loss", help="ce | focal"),
        gamma: Optional[float] = typer.Option(None, "--gamma", help="Focal-loss gamma."),
        weight_strategy: Optional[str] = typer.Option(None, "--weight-strategy", help="seed | inverse | effective | none"),
        o_weight: Optional[float] = typer.Option(None, "--o-weight"),
        entity_boost: Optional[float] = typer.Option(None, "--entity-boost"),
        max_length: Optional[int] = typer.Option(None, "--max-length"),
        label_all_subwords: Optional[bool] = typer.Option(None, "--label-all-subwords/--label-first-subword", help="Label every subword (B→I on continuations) or only the first (default)."),
        eval_every_steps: Optional[int] = typer.Option(None, "--eval-every-steps", help="Default: every epoch."),
        evals_per_epoch: Optional[int] = typer.Option(None, "--evals-per-epoch", help="Evenly spaced evaluations per epoch (default 1)."),
        early_stopping: Optional[int] = typer.Option(None, "--early-stopping", help="Stop after N evaluations without dev-F1 gain."),
        seed: Optional[int] = typer.Option(None, "--seed"),
        freeze_embeddings: Optional[bool] = typer.Option(None, "--freeze-embeddings/--train-embeddings", help="Keep the word-embedding matrix fixed (about 1.2x faster on CPU)."),
        embedding_update: Optional[str] = typer.Option(None, "--embedding-update", help="auto (sparse on CPU) | sparse | dense: AdamW on the embedding rows batches use, or on all."),
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
        precision: Optional[str] = typer.Option(None, "--precision", help="auto (bf16 where the GPU/CPU has bf16 units) | fp32 | bf16"),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads."),
        as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    ) -> None:
        """Fine-tune a token-classification model with weighted or focal loss."""
        overrides = dict(
            model=model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            loss=loss, gamma=gamma, weight_strategy=weight_strategy, o_weight=o_weight,
            entity_boost=entity_boost, max_length=max_length, label_all_subwords=label_all_subwords,
            eval_every_steps=eval_every_steps, evals_per_epoch=evals_per_epoch, early_stopping_patience=early_stopping, seed=seed,
            freeze_embeddings=freeze_embeddings, embedding_update=embedding_update, device=device, precision=precision, num_threads=threads,
        )
        if class_weights is False:
            given = [f"--{n.replace('_', '-')}" for n in ("weight_strategy", "o_weight", "entity_boost")
                     if overrides[n] is not None]
            if given:
                raise ValueError(f"--no-class-weights means uniform weights, but {', '.join(given)} was given too; "
                                 "drop one of them")
        elif class_weights is True and weight_strategy is None:
            overrides.update(weight_strategy="seed")
        cfg = build_train_config(
            config_file, data_options(data, train_file, dev_file, test_file, fmt, on_invalid, split_seed, label_names),
            overrides,
        )
        if class_weights is False:
            cfg = cfg.with_uniform_weights()
        # Imported once the options are known good: torch and transformers take seconds to
        # load, and a mistyped option should not wait for them.
        from nerkit.train import train

        collapsed_run = [0]
        last_entity_prob: list[float | None] = [None]
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                      TimeElapsedColumn(), console=console, transient=True, disable=as_json) as progress:
            task = progress.add_task("training", total=None)

            def on_step(step: int, total: int) -> None:
                progress.update(task, completed=step, total=total)

            def report(metrics: dict, _save) -> None:
                if not as_json:
                    # One line per evaluation even when piped (rich wraps at 80 columns off a terminal).
                    progress.console.print(format_metrics_line(metrics), highlight=False, soft_wrap=True)
                # The collapse warning goes to stderr with --json too: stdout stays one JSON
                # document, and a scripted run still hears that it predicts only 'O'.
                collapsed_run[0] = collapsed_run[0] + 1 if metrics["collapsed"] else 0
                prob, before = metrics.get("gold_entity_prob"), last_entity_prob[0]
                last_entity_prob[0] = prob
                run = collapsed_run[0]
                if warn_collapse_now(run):
                    # Whether the model is moving towards entities tells a stuck run from
                    # a slow one (the search's collapse guard spares the latter).
                    trend = (f"; its probability on entity labels at gold entity tokens went {before:.3f} → "
                             f"{prob:.3f}" if prob is not None and before is not None else "")
                    err_console.print(
                        f"[yellow]warning:[/] entity_pred_ratio has stayed under {cfg.collapse_eps} for "
                        f"{run} evaluations: the model predicts 'O' almost everywhere{trend}", soft_wrap=True)

            try:
                result = train(cfg, report=report, on_step=on_step, output_dir=output_dir, evaluate_test=True)
            except ValueError as exc:
                raise ValueError(located(str(exc), config_file, overrides)) from exc
        summary = {"status": result.status, "output_dir": str(result.output_dir),
                   "entity_o_ratio": result.entity_o_ratio, "compute_precision": result.compute_precision,
                   "best": result.best, "test": result.test, "data_report": result.data_report}
        if as_json:
            typer.echo(json.dumps(summary, indent=2, default=str))
            if result.output_dir is None:
                raise typer.Exit(1)  # no model: `nerkit train … && nerkit predict …` must stop here
            return
        changed = result.data_report or {}
        if changed.get("repaired") or changed.get("skipped"):
            reasons = [r for f in changed["files"] for r in f["reasons"]]
            console.print(f"data: {changed['repaired']} record(s) repaired, {changed['skipped']} skipped "
                          f"(--on-invalid {cfg.data.on_invalid}); e.g. {reasons[0] if reasons else ''} "
                          f"(all of them: nerkit doctor, or data_report in {result.output_dir}/metrics.json)",
                          highlight=False, markup=False, soft_wrap=True)
        console.print(f"status: {result.status}   effective entity:O weight ratio {result.entity_o_ratio:.3f}   "
                      f"precision {result.compute_precision}")
        if result.best:
            console.print(f"best dev F1 {result.best['dev_f1']:.4f} at epoch {result.best['epoch']:.2f}")
        if result.test:
            console.print(f"test F1 {result.test['f1']:.4f}  P {result.test['precision']:.4f}  "
                          f"R {result.test['recall']:.4f}  entity_pred_ratio {result.test['entity_pred_ratio']:.4f}")
        if result.output_dir is None:
            err_console.print(f"[yellow]no model saved:[/] the run ended ({result.status}) before its first "
                              "evaluation", soft_wrap=True)
            raise typer.Exit(1)
        else:
            # markup=False: a path such as runs/exp[lr=1e-4] is text, not rich markup.
            console.print(f"model saved to {result.output_dir}", markup=False, highlight=False)
