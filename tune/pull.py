"""Download a promoted model version and verify it before it appears on disk.

``pull("s3://bucket/models/ner@latest", "model/")`` resolves the version, downloads
every file into a temporary directory beside the destination, checks each file's
sha256 and size against ``manifest.json`` (and that no file is missing or extra), and
only then renames the directory into place. A missing, truncated or altered file
raises :class:`PullError` naming it, and the destination is left as it was.

Example:
    >>> pull("registry/ner@v2", "model")                 # doctest: +SKIP
    PosixPath('model')
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

from tune.registry import MANIFEST, Registry, hash_stream

_REF = re.compile(r"^(?P<uri>.+?)(?:@(?P<spec>latest|v\d+))?$")


class PullError(ValueError):
    """The registry copy is incomplete or altered; nothing was written to the destination."""


def parse_ref(ref: str) -> tuple[str, str, str]:
    """``"<registry>/<model-name>[@vN|@latest]"`` → ``(registry, model_name, spec)``.

    >>> parse_ref("s3://b/models/ner@v3")
    ('s3://b/models', 'ner', 'v3')
    >>> parse_ref("registry/ner")
    ('registry', 'ner', 'latest')
    """
    m = _REF.match(ref.strip())
    uri = m.group("uri").rstrip("/") if m else ""
    if "/" not in uri.split("://")[-1]:
        raise ValueError(f"model reference is {ref!r}, but must be <registry>/<model-name>[@vN|@latest], "
                         "e.g. s3://bucket/models/ner@latest")
    registry, name = uri.rsplit("/", 1)
    return registry, name, (m.group("spec") or "latest")


def resolve(reg: Registry, spec: str) -> int:
    """The version number ``spec`` (``latest`` or ``vN``) names in ``reg``."""
    if spec == "latest":
        number = reg.latest()
        if number is None:
            raise ValueError(f"{reg.uri} has no 'latest' pointer (nothing promoted yet?); "
                             f"versions there: {[f'v{v}' for v in reg.versions()] or 'none'}")
        return number
    number = int(spec[1:])
    if number not in reg.versions():
        raise ValueError(f"{reg.uri} has no {spec}; versions there: {[f'v{v}' for v in reg.versions()] or 'none'}")
    return number


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _download_verified(reg: Registry, src: str, dest: Path, label: str) -> dict:
    """Copy ``src`` into ``dest``; raise PullError unless every file matches the manifest."""
    try:
        with reg.fs.open_input_stream(f"{src}/{MANIFEST}") as f:
            raw = f.read()
    except FileNotFoundError:
        raise PullError(f"{label}: no {MANIFEST} (an incomplete version or not a nerkit registry)") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise PullError(f"{label}: {MANIFEST} is not valid JSON (damaged)") from None
    expected = manifest.get("files") or {}
    present = set(reg.files(src)) - {MANIFEST}
    missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
    if missing:
        raise PullError(f"{label}: {', '.join(missing)} listed in {MANIFEST} but missing from the registry")
    if extra:
        raise PullError(f"{label}: {', '.join(extra)} in the registry but not in {MANIFEST}")
    for name, want in sorted(expected.items()):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with reg.fs.open_input_stream(f"{src}/{name}") as f, open(target, "wb") as out:
            got = hash_stream(f, copy_to=out)
        if got["size"] != want["size"]:
            raise PullError(f"{label}: {name} is {got['size']} bytes, the manifest says {want['size']} "
                            "(truncated or altered)")
        if got["sha256"] != want["sha256"]:
            raise PullError(f"{label}: {name} has sha256 {got['sha256']}, the manifest says "
                            f"{want['sha256']} (altered)")
    (dest / MANIFEST).write_bytes(raw)
    return manifest


def pull(ref: str, to: str | Path, force: bool = False) -> Path:
    """Download and verify a model version into ``to`` (see module doc).

    Args:
        ref: ``<registry>/<model-name>[@vN|@latest]``.
        to: Destination directory; must not exist or be empty unless ``force``.
        force: Replace a non-empty destination (only after the download verified).

    Returns:
        The destination path.

    Raises:
        PullError: a file is missing, extra, truncated or altered (destination untouched).
        ValueError: a bad reference, an unknown version, or a non-empty destination.
    """
    registry, name, spec = parse_ref(ref)
    reg = Registry(registry, name)
    dest = Path(to).expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{dest} exists and is not a directory; pick another --to")
    if _is_nonempty_dir(dest) and not force:
        raise ValueError(f"{dest} exists and is not empty; pick another --to or pass --force to replace it")
    number = resolve(reg, spec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.pull-{uuid.uuid4().hex}"
    tmp.mkdir()
    label = f"{reg.uri}/v{number}"
    try:
        _download_verified(reg, reg.version_path(number), tmp, label)
        _move_into_place(tmp, dest, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _move_into_place(tmp: Path, dest: Path, force: bool) -> None:
    """Rename the verified download to ``dest`` (keeping the old one until that succeeds)."""
    old = None
    if dest.is_dir():
        if _is_nonempty_dir(dest):
            if not force:
                raise ValueError(f"{dest} became non-empty during the download; nothing was changed")
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex}"
            os.rename(dest, old)
        else:
            dest.rmdir()
    os.rename(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

