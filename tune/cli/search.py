"""``nerkit search``: run or resume a distributed hyperparameter search."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from nerkit.cli import console, err_console
from nerkit.cli.options import (DataOption, DevFileOption, FormatOption, LabelNamesOption, OnInvalidOption,
                                SplitSeedOption, TestFileOption, TrainFileOption, data_options)
from nerkit.data import DataConfig
from nerkit.model import BUNDLED_MODEL, DEFAULT_MAX_LENGTH


def _progress_table(p) -> Table:
    t = Table.grid(padding=(0, 2))
    done = sum(p.reasons.values())
    reasons = "  ".join(f"{k} {v}" for k, v in sorted(p.reasons.items())) or "-"
    best = f"{p.best_f1:.4f} ({p.best_trial} @ epoch {p.best_epoch:.2f})" if p.best_f1 is not None else "-"
    t.add_row("[bold]trials[/]", f"{done}/{p.total} done", f"running {p.running}", f"pending {p.pending}")
    t.add_row("[bold]ended by[/]", reasons)
    t.add_row("[bold]best dev F1[/]", best)
    return t


#: Errors of storage itself (full, over quota, too large a file, read-only, refused, failing).
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def _under(path: str, root: str) -> bool:
    """Whether ``path`` lies in the storage ``root`` (``runs2/x`` does not lie in ``runs``)."""
    if "://" not in path:
        path = os.path.abspath(path)
    return path == root or path.startswith(root.rstrip("/") + "/")


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_cmd(
        ctx: typer.Context,
        space: Optional[Path] = typer.Option(
            None, "--space", show_default="the bundled default",
            help="Search space YAML, or a bundled one by name: default, ratio, seed_recipe."),
        data: DataOption = None,
        train_file: TrainFileOption = None,
        dev_file: DevFileOption = None,
        test_file: TestFileOption = None,
        fmt: FormatOption = None,
        on_invalid: OnInvalidOption = None,
        split_seed: SplitSeedOption = None,
        label_names: LabelNamesOption = None,
        model: str = typer.Option(BUNDLED_MODEL, "--model", help="HF name or path (default: bundled MiniLM)."),
        max_length: int = typer.Option(DEFAULT_MAX_LENGTH, "--max-length"),
        trials: int = typer.Option(8, "--trials", "-n", help="Trials, baselines included."),
        cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial"),
        gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", help="Fractional: 0.5 = two trials per GPU."),
        max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", help="Default: what resources allow."),
        storage: str = typer.Option("runs", "--storage", help="Local dir, NFS path, s3://… or gs://…"),
        name: Optional[str] = typer.Option(None, "--name", help="Experiment name (default: search-<time>)."),
        resume: Optional[str] = typer.Option(None, "--resume", help="Continue the interrupted search NAME."),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: RAY_ADDRESS or local)."),
        seed: int = typer.Option(0, "--seed", help="TPE sampler seed."),
        no_baselines: bool = typer.Option(False, "--no-baselines", help="Do not enqueue the space's baselines."),
        max_failures: int = typer.Option(2, "--max-failures", help="Retries of a failing trial."),
        checkpoint_every: int = typer.Option(
            1, "--checkpoint-every",
            help="Checkpoint every Nth evaluation and the final one (fewer writes; a retried trial redoes more)."),
        max_epochs: Optional[float] = typer.Option(None, "--max-epochs", help="Override the space's ASHA max budget."),
        grace_epochs: Optional[float] = typer.Option(None, "--grace-epochs", help="Override ASHA's grace period."),
        reduction_factor: Optional[float] = typer.Option(
            None, "--reduction-factor",
            help="Override ASHA's reduction factor (>= 2): it keeps the top 1/N of the trials at each rung."),
        startup_trials: Optional[int] = typer.Option(
            None, "--startup-trials",
            help="Trials before TPE models the results, baselines included (default: a third of --trials, 4 to 10)."),
        as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    ) -> None:
        """Search loss weights, focal gamma, learning rate and batch size with Ray Tune + Optuna TPE + ASHA."""
        import time

        from tune.settings import SETTINGS_FILE, experiment_path, storage_root
        from tune.storage import exists, join
        from tune.space import resolve_space

        if resume:
            # A resumed search runs on its saved settings (search.json); an option that
            # would change them is refused rather than silently ignored. (Compared by name:
            # typer vendors its own click, whose ParameterSource is not click's.)
            ignored = sorted(f"--{p.replace('_', '-')}" for p in ctx.params
                             if p not in ("resume", "storage", "address", "as_json")
                             and getattr(ctx.get_parameter_source(p), "name", "") == "COMMANDLINE")
            if ignored:
                raise ValueError(f"--resume {resume} continues the search with its saved settings, but "
                                 f"{', '.join(ignored)} was given too; drop them (only --storage, --address and "
                                 "--json go with --resume), or start a new search under another --name")
            exp_name = resume
        else:
            # `--name ""` is a mistake to report (SearchSettings does), not "no name given".
            exp_name = name if name is not None else time.strftime("search-%Y%m%d-%H%M%S")
            settings = _settings(
                ctx,
                name=exp_name, space=str(resolve_space(space)), storage=storage, trials=trials,
                cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent,
                seed=seed, baselines=not no_baselines, max_failures=max_failures,
                checkpoint_every=checkpoint_every, model=model,
                max_length=max_length,
                data=DataConfig(**data_options(data, train_file, dev_file, test_file, fmt, on_invalid, split_seed,
                                               label_names)),
                max_epochs=max_epochs, grace_epochs=grace_epochs, reduction_factor=reduction_factor,
                startup_trials=startup_trials,
            )
        # Imported once the options are known good: Ray, torch and transformers take seconds
        # to load, and a mistyped option should not wait for them.
        from tune.driver import resume_search, run_search
        from tune.parquet import refresh_tables
        from tune.progress import add_listener, remove_listener
        from tune.summary import summarize

        live = Live(console=console, refresh_per_second=4, transient=False) if not as_json else None

        def show(p) -> None:
            if live is not None:
                live.update(_progress_table(p))

        import optuna

        # Optuna logs "A new study created in RDB" at INFO through its own handler.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        add_listener(show)
        _sigterm_as_ctrl_c()
        try:
            if live is not None:
                live.start()
            if resume:
                resume_search(resume, storage, address)
            else:
                run_search(settings, address)
        except (KeyboardInterrupt, SystemExit) as exc:
            # Ctrl-C before Ray took over (it handles a first Ctrl-C itself once trials run),
            # or a second one, or SIGTERM while the search is set up: before Ray starts it
            # raises KeyboardInterrupt here (_sigterm_as_ctrl_c), after, Ray's own handler
            # exits with status 15 (until fit() passes SIGTERM to Ray's graceful stop,
            # tune.driver_process). --resume continues, or starts, whatever search.json holds.
            import signal

            if isinstance(exc, SystemExit) and exc.code != signal.SIGTERM:
                raise
            exp = experiment_path(exp_name, storage)
            if exists(join(exp, SETTINGS_FILE)):
                # A second Ctrl-C mid-search, or one while a resume starts, lands here too,
                # with Ray's state on disk: then nothing is lost, and "before Ray saved" was false.
                from ray import tune as ray_tune

                saved = ("interrupted; Ray had saved the search's state" if ray_tune.Tuner.can_restore(exp)
                         else "interrupted before Ray saved the search's state")
                why = f"{saved}; continue it with: nerkit search --resume {exp_name} --storage {storage_root(storage)}"
            else:
                why = "interrupted before the search was set up; nothing was saved"
            err_console.print(why, highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        except (OSError, optuna.exceptions.StorageInternalError) as exc:
            # Storage that filled up, went read-only or failed mid-search: Ray's or Optuna's
            # error alone names no file and no way on (Optuna blames "e.g. exceeding max
            # length" for a read-only optuna.db). The state up to the last snapshot is there.
            exp = experiment_path(exp_name, storage)
            named = getattr(exc, "filename", None)
            if isinstance(exc, OSError) and (exc.errno not in _STORAGE_ERRNOS
                                             or (named and not _under(str(named), storage_root(storage)))):
                raise  # not the storage: an unreadable data or model file, Ray's own temp dir

            if not exists(join(exp, SETTINGS_FILE)):
                raise
            err_console.print(f"error: writing the search's state under {exp} failed ({type(exc).__name__}: {exc}). "
                              "What was saved before stays; once the storage has room and is writable again, "
                              f"continue it with: nerkit search --resume {exp_name} --storage {storage_root(storage)}",
                              highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(1) from None
        finally:
            remove_listener(show)
            if live is not None:
                live.stop()
                console.print()
        # The search has ended and its state is saved: a SIGTERM now (a scheduler's time
        # limit) lets the summary below finish, instead of Ray's handler exiting mid-write
        # (143, or an abort in Ray's shutdown). A second one ends the process at once.
        _finish_despite_sigterm()
        try:
            refresh_tables(experiment_path(exp_name, storage))  # trials.parquet, history.parquet
            summary = summarize(exp_name, storage)
        except KeyboardInterrupt:
            # A second Ctrl-C, after Ray's first stopped the trials: typer ended it with
            # status 130 and no word, Ray's own line naming Tuner.restore the last one shown.
            where = f"{exp_name} --storage {storage_root(storage)}"
            err_console.print(f"interrupted while writing the search's tables and summary; its state is saved. "
                              f"See it with: nerkit trials {where}; continue it, if trials were left "
                              f"unfinished, with: nerkit search --resume {where}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        if as_json:
            typer.echo(json.dumps(summary, indent=2, default=str))
        else:
            _print_summary(summary)
        code, why = outcome(summary, storage_root(storage))
        if code:
            err_console.print(why, highlight=False, soft_wrap=True)
            raise typer.Exit(code)


def _sigterm_as_ctrl_c() -> None:
    """SIGTERM (a batch scheduler, ``kill``) before Ray starts ends the command as Ctrl-C
    does, with the --resume hint and status 130, not the default's silent 143."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread can set handlers (a Python caller's thread)

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _finish_despite_sigterm() -> None:
    import signal

    def once(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        err_console.print("SIGTERM: the search has ended; writing its tables and summary (a second SIGTERM "
                          "stops at once)", highlight=False, soft_wrap=True)

    signal.signal(signal.SIGTERM, once)


def outcome(summary: dict, storage: str) -> tuple[int, str]:
    """The exit code of a search that ended with ``summary``, and what to tell the user.

    0: done, with a best trial. 130: interrupted (on Ctrl-C, or SIGTERM through
    tune.driver_process.sigterm_stops_gracefully, Ray saves its state and returns as if done),
    with the command that continues it. 1: ended without any trial reporting a result, or
    with every trial failed.
    """
    # Stopped before Ray created every trial (Ctrl-C between trials, or before the first)
    # leaves fewer trials than planned: those are unfinished too (tune.summary.unfinished).
    stopped, not_started = summary["unfinished"]["stopped"], summary["unfinished"]["not_started"]
    unfinished = stopped + not_started
    if unfinished:
        parts = ", ".join(f"{n} {what}" for n, what in ((stopped, "stopped"), (not_started, "not started")) if n)
        return 130, (f"interrupted with {unfinished} trial(s) unfinished ({parts}); continue with: nerkit search "
                     f"--resume {summary['name']} --storage {storage}")
    # What ended the trials that could have given a best: errors, non-finite losses.
    failures = {r: summary["reasons"].get(r, 0) for r in ("error", "diverged")}
    failed = ",".join(r for r, n in failures.items() if n)
    see = f"nerkit trials {summary['name']} --storage {storage}" + (f" --stop-reason {failed}" if failed else "")
    if summary["best"] is None:
        return 1, f"no trial reported a result; see why with: {see}"
    if sum(failures.values()) == summary["trials"]:
        # Each reported before failing, so there is a "best": not a search that worked.
        return 1, f"every trial failed ({failed}); its best is no answer; see why with: {see}"
    return 0, ""


def _print_summary(s: dict) -> None:
    from tune.summary import checkpoint_not_best

    # Paths, values and baseline names are the user's text: escaped, not read as markup.
    console.print(f"[bold]search[/] {s['name']}  at {escape(str(s['experiment_path']))}")
    console.print("trials by stop reason: " + "  ".join(f"{k} {v}" for k, v in sorted(s["reasons"].items())))
    best = s.get("best")
    if not best:
        console.print("[yellow]no trial reported a result[/]")
        return
    console.print(f"[bold green]best trial[/] {best['trial_id']}: dev F1 {best['dev_f1']:.4f} at epoch "
                  f"{best['epoch']:.2f} (entity_pred_ratio {best['entity_pred_ratio']:.4f}, "
                  "entity:O weight ratio " + (f"{best['entity_o_ratio']:.3f})" if best["entity_o_ratio"] is not None
                                              else "unknown)"))
    console.print("  searched: " + ", ".join(f"{k}={v}" for k, v in best["params"].items()), markup=False)
    console.print(f"  checkpoint: {best['checkpoint'] or '(none)'}", markup=False)
    lag = checkpoint_not_best(best)
    if lag:
        console.print(f"  [yellow]that checkpoint is {lag}[/]")
    for b in s.get("baselines", []):
        f1 = f"{b['dev_f1']:.4f}" if b["dev_f1"] is not None else "- (no evaluation)"
        console.print(f"  baseline {b['name']}: best dev F1 {f1} ({b['trial_id']}, {b['stop_reason'] or 'unfinished'})",
                      markup=False)


def _settings(ctx: typer.Context, **values):
    """SearchSettings from the options, its errors in the options' words (``--grace-epochs
    is 0.0``, not ``grace_epochs is 0.0``: the user typed no grace_epochs)."""
    from nerkit.cli.options import as_flag
    from tune.settings import SearchSettings

    try:
        return SearchSettings(**values)
    except ValueError as exc:
        raise ValueError(as_flag(str(exc), list(ctx.params))) from None
