"""The search commands, added to the ``nerkit`` CLI through the ``nerkit.plugins`` entry point."""

from __future__ import annotations

import importlib

import typer

_COMMAND_MODULES = ("search", "trials", "report", "promote", "pull")


def register(app: typer.Typer) -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"tune.cli.{name}").register(app)
