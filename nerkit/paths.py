"""Paths as configs store them."""

from __future__ import annotations

import os
from pathlib import Path


def local_absolute(path: str | None) -> str | None:
    """An existing local path made absolute; anything else (a hub name, a URI, a path
    that does not exist here) as given.

    Saved configs are re-run from other directories (``nerkit train --config``), trials
    run in their own working directories (and on other machines), and ``search.json``
    is read from anywhere: a relative path stored in them would name other data, or none.
    """
    if not path or "://" in path or not Path(path).expanduser().exists():
        return path
    # abspath, not resolve: a symlink stays as given (mount points differ between nodes).
    return os.path.abspath(os.path.expanduser(path))
