"""The installed versions of the packages behind a run, for what it records.

A model directory, each search checkpoint and a search's ``search.json`` record them,
so a published model says what trained it, not only what published it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: What shapes a trained model (nerkit, torch, transformers) and the search around it.
PACKAGES = ("nerkit", "torch", "transformers", "ray", "optuna")


def package_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None where one is not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
