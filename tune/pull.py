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

import glob
import json
import os
import re
import shutil
import uuid
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs

from tune.registry import MANIFEST, Registry, hash_stream, is_stale

_SPEC = re.compile(r"^(latest|v[1-9]\d*)$")
_VERSION = re.compile(r"^v[1-9]\d*$")
_USAGE = "<registry>/<model-name>[@vN|@latest], e.g. s3://bucket/models/ner@latest"


class PullError(ValueError):
    """The registry copy is incomplete or altered; nothing was written to the destination."""


def parse_ref(ref: str) -> tuple[str, str, str]:
    """``"<registry>/<model-name>[@vN|@latest]"`` → ``(registry, model_name, spec)``.

    >>> parse_ref("s3://b/models/ner@v3")
    ('s3://b/models', 'ner', 'v3')
    >>> parse_ref("registry/ner")
    ('registry', 'ner', 'latest')
    """
    uri, spec = ref.strip().rstrip("/"), "latest"
    head, _, last = uri.rpartition("/")
    if "@" in last:  # only the model name's segment carries a version ("user@host" may be in the URI)
        name, _, spec = last.rpartition("@")
        uri = f"{head}/{name}" if head else name
        if not _SPEC.match(spec):
            raise ValueError(f"version is {spec!r} in model reference {ref!r}, but must be vN (v1, v2, ...) "
                             f"or latest: {_USAGE}")
    registry, _, name = uri.rpartition("/")
    if "/" not in uri.split("://")[-1] or not registry.split("://")[-1] or not name:
        raise ValueError(f"model reference is {ref!r}, but must be {_USAGE}")
    return registry, name, spec


def resolve(reg: Registry, spec: str) -> int:
    """The version number ``spec`` (``latest`` or ``vN``) names in ``reg``."""
    where, model = reg.uri.rsplit("/", 1)
    if _VERSION.match(model) and reg.fs.get_file_info(f"{reg.root}/{MANIFEST}").type == pafs.FileType.File:
        # The version's directory, as promote prints it (".../ner/v3"): a reference names it "ner@v3".
        raise ValueError(f"{reg.uri} is a version's directory; pull {where}@{model}")
    if not reg.exists():
        models = reg.models()
        if reg.is_model_root():
            raise ValueError(f"{where} is itself a model (it holds versions and latest), so {where}/{model} "
                             f"names it twice; pull {where}@{spec}")
        if models:
            raise ValueError(f"{where} has no model named {model!r}; its models: {', '.join(models)}")
        raise ValueError(f"{where} holds no promoted model (a mistyped path or bucket?); nerkit promote NAME "
                         f"--registry {where} publishes one there")
    versions = reg.versions()
    there = [f"v{v}" for v in versions] or "none"
    if spec == "latest":
        number = reg.latest()
        if number is None:
            raise ValueError(f"{reg.uri} has no 'latest' pointer (nothing promoted yet?); versions there: {there}")
        if number not in versions:
            raise ValueError(f"{reg.uri}/latest says v{number}, which does not exist (the registry was edited "
                             f"by hand?); versions there: {there}; pull one of them by number")
        return number
    number = int(spec[1:])
    if number not in versions:
        raise ValueError(f"{reg.uri} has no {spec}; versions there: {there}")
    return number


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _download_verified(reg: Registry, number: int, dest: Path, label: str) -> dict:
    """Copy version ``number`` into ``dest``; raise PullError unless its manifest is that
    version's and every file matches it."""
    src = reg.version_path(number)
    try:
        with reg.fs.open_input_stream(f"{src}/{MANIFEST}") as f:
            raw = f.read()
    except FileNotFoundError:
        raise PullError(f"{label}: no {MANIFEST} (an incomplete version or not a nerkit registry)") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise PullError(f"{label}: {MANIFEST} is not valid JSON (damaged)") from None
    expected = manifest.get("files") if isinstance(manifest, dict) else None
    if not _valid_file_list(expected):
        raise PullError(f"{label}: {MANIFEST} has no valid 'files' mapping of name -> {{sha256, size}} "
                        "(damaged, or not written by nerkit promote)")
    # Checksums prove the files are the manifest's, not that the manifest is this version's:
    # a vN copied over from another version or model (a bad sync, a restore, a hand copy)
    # verified whole and was installed as what `latest` named.
    says = (manifest.get("model_name"), manifest.get("version"))
    if says != (reg.model_name, number):
        raise PullError(f"{label}: its {MANIFEST} says it is {says[0]!r} v{says[1]} (copied from another version "
                        "or model?); pull that version itself, or promote again")
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


def _valid_file_list(files) -> bool:
    return isinstance(files, dict) and bool(files) and all(
        isinstance(name, str) and _inside(name) and isinstance(want, dict) and isinstance(want.get("sha256"), str)
        and isinstance(want.get("size"), int) and not isinstance(want.get("size"), bool)
        for name, want in files.items())


def _inside(name: str) -> bool:
    """A name that stays inside the directory it is written to. An object-store key may
    hold ``..`` literally, and a file is written at ``--to``/name."""
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith("/") and "\\" not in name and ".." not in parts


def pull(ref: str, to: str | Path, force: bool = False) -> Path:
    """Download and verify a model version into ``to`` (see module doc).

    Args:
        ref: ``<registry>/<model-name>[@vN|@latest]``.
        to: Destination directory; must not exist or be empty unless ``force``.
        force: Replace a non-empty destination, an earlier pull (it holds
            ``manifest.json``), only after the download verified.

    Returns:
        The destination path.

    Raises:
        PullError: a file is missing, extra, truncated or altered (destination untouched).
        ValueError: a bad reference, an unknown version, an empty ``to``, a non-empty
            destination (without ``force``, or that is not an earlier pull), or one that is
            the current directory or above it, or inside or above a local registry.
    """
    registry, name, spec = parse_ref(ref)
    reg = Registry(registry, name)
    if not str(to).strip():
        # An unset variable (`--to "$DEST"`) would otherwise mean the current directory.
        raise ValueError("the destination (--to) is empty; give the directory to pull into")
    dest = Path(to).expanduser().absolute()
    if dest.is_symlink():
        # Replacing a link would swap it for a real directory (and leave the target as it
        # was): ask for the directory itself.
        raise ValueError(f"{dest} is a symbolic link (to {os.readlink(dest)}); pass the directory it points to "
                         "as --to")
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{dest} exists and is not a directory; pick another --to")
    if _is_nonempty_dir(dest) and not force:
        raise ValueError(f"{dest} exists and is not empty; pick another --to or pass --force to replace it")
    _check_replaceable(dest, reg)
    number = resolve(reg, spec)
    tmp = dest.parent / f".{dest.name}.pull-{uuid.uuid4().hex}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_downloads(dest)
        tmp.mkdir()
    except OSError as exc:
        # Before any download: the destination is at fault (a file on its path, a
        # directory not writable), not the registry or the network.
        raise ValueError(f"--to {dest} cannot be written ({exc.strerror or exc}: {exc.filename}); the download "
                         f"goes beside it, into {dest.parent}: pick a --to in a directory you can write") from None
    label = f"{reg.uri}/v{number}"
    try:
        _download_verified(reg, number, tmp, label)
        _move_into_place(tmp, dest, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _remove_stale_downloads(dest: Path) -> None:
    """Remove the downloads beside ``dest`` (``.<name>.pull-*``) that a pull killed
    outright (SIGKILL) left, once their newest file is older than a day: no pull takes
    that long, and each holds a whole model."""
    for old in dest.parent.glob(f".{glob.escape(dest.name)}.pull-*"):
        try:
            times = [p.stat().st_mtime for p in old.rglob("*") if p.is_file()] or [old.stat().st_mtime]
        except OSError:  # removed meanwhile (another pull), or unreadable: left alone
            continue
        if old.is_dir() and is_stale(times):
            shutil.rmtree(old, ignore_errors=True)


def _check_replaceable(dest: Path, reg: Registry) -> None:
    """Refuse a destination whose replacement (``--force``) would delete what it must not:
    the directory the command runs in or one above it, the registry pulled from, or a
    non-empty directory that is not an earlier pull (it has no manifest.json)."""
    real = Path(os.path.realpath(dest))
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == cwd or real in cwd.parents:
        raise ValueError(f"--to {dest} is the current directory or one above it; pull into a directory of its "
                         "own (e.g. --to model)")
    if reg.local:
        # The whole registry, every model name in it: a version directory of another model
        # holds a manifest.json too, and would pass as an earlier pull.
        root = Path(os.path.realpath(reg.root)).parent
        if real == root or real in root.parents or root in real.parents:
            raise ValueError(f"--to {dest} is inside the registry {root} or holds it; pull into a directory "
                             "outside the registry")
    if not _is_nonempty_dir(dest):
        return
    if not (dest / MANIFEST).is_file():
        raise ValueError(f"{dest} is not empty and holds no {MANIFEST}, so it is not an earlier pull that --force "
                         "may replace; remove it yourself or pick another --to")
    _check_earlier_pull(dest)


def _check_earlier_pull(dest: Path) -> None:
    """A ``manifest.json`` alone does not make an earlier pull (web apps and browser
    extensions have one): it must list files as nerkit's does."""
    try:
        found = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        found = None
    listed = found.get("files") if isinstance(found, dict) else None
    if not _valid_file_list(listed):
        raise ValueError(f"{dest}/{MANIFEST} is not a nerkit model manifest, so {dest} is not an earlier pull that "
                         "--force may replace; remove it yourself or pick another --to")


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
    try:
        os.rename(tmp, dest)
    except OSError:
        if old is not None:
            os.rename(old, dest)  # put the old directory back: the destination is left as it was
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

