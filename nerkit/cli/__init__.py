"""The ``nerkit`` command line: one Typer app, one module per command.

Each command module exposes ``register(app)`` and is a thin wrapper that parses
options and calls an importable library function. Commands from other installed
packages (the search commands in ``tune/``) join through the ``nerkit.plugins``
entry-point group, so this package never imports them by name.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import signal
import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.markup import escape

# Library modules log; only the CLI talks to the terminal. Commands print results to
# `console` and warnings and errors to `err_console`, so stdout stays what scripts read
# (grep, tee, --json).
# soft_wrap: lines stay whole when piped; off a terminal rich would fold them at 80
# columns, mid-path, and a release script reads paths and commands from them.
console = Console(soft_wrap=True)
err_console = Console(stderr=True)

_COMMAND_MODULES = ("doctor", "train", "predict")


def build_app() -> typer.Typer:
    # transformers' per-load/per-save tqdm bars would interleave with our own output
    # (and corrupt --json lines).
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    app = typer.Typer(
        name="nerkit",
        help="Weighted/focal-loss NER fine-tuning and its distributed hyperparameter search.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in _COMMAND_MODULES:
        importlib.import_module(f"nerkit.cli.{name}").register(app)
    for ep in entry_points(group="nerkit.plugins"):
        ep.load()(app)
    return app


@contextlib.contextmanager
def exit_on_sigterm():
    """SIGTERM (a CI job's time limit, ``kill``) ends the command as an exception in the
    main thread, so its clean-up (``finally``, ``except BaseException``) runs: a killed
    pull or promote then leaves no half-written download beside its destination, no
    staged version in the registry, no temporary model. Python's default for SIGTERM is
    to die at once, clean-up skipped. Exit status 143 (128 + 15), as the default."""
    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    try:
        _main()
    finally:
        _before_teardown()


def _before_teardown() -> None:
    """Collect once, then freeze what is left, so the interpreter's teardown skips it.

    With transformers' BERT model imported, that teardown took 2.4 s after a command's
    work was done; this way 0.35 s (2-core CPU, benchmarks/RESULTS.md §3, update 15). The
    collection finalises cyclic garbage (an unclosed file's buffer, say) as teardown
    would have; atexit handlers (Ray's shutdown, logging's flush) still run after it.
    """
    gc.collect()
    gc.freeze()


def _main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app = build_app()
        # Standalone mode: click reports usage errors and exits with each command's
        # own code; only user errors from the library need translating here.
        app()
    except (ValueError, FileNotFoundError) as exc:
        # User errors (bad data, bad config) get one clear line, not a traceback.
        # Escaped: messages quote user values and lists ("[@vN|@latest]", "['B-FOOD']") that
        # rich would otherwise read as markup and drop.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        # Ctrl-C while modules import (seconds: torch, transformers, Ray), before a command
        # handles it: one line, not a traceback through the import machinery.
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except OSError as exc:
        # The machine, not the input: a full disk, a path that is a file, no permission.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(1)
