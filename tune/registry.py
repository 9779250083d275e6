"""A model registry on any pyarrow filesystem: immutable versions and a ``latest`` pointer.

Layout under a registry URI (local path, ``s3://``, ``gs://``)::

    <registry>/<model-name>/v1/            model files, MODEL_CARD.md, manifest.json
    <registry>/<model-name>/v2/
    <registry>/<model-name>/latest         the text "v2"

Publishing never exposes half a version: files go to ``.tmp-<uuid>/`` first, are
re-read and re-hashed against the manifest, and only then renamed to ``v<N>`` (N = 1 +
the highest existing). On a local filesystem that rename is atomic and fails when the
target exists and is non-empty, so two concurrent publishers can never share an N: the
loser takes the next one. Object stores have no directory rename; there files are
copied one by one, ``manifest.json`` last, and a reader trusts a version only through
its manifest (``nerkit pull`` verifies every file) — concurrent publishers to one
object-store model name are not supported. ``latest`` only moves forward: it is
rewritten (temp file, then move over) only when the new N is higher, under a file lock
on local filesystems.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from nerkit.model_files import CARD_FILE, MANIFEST_FILE
from tune.storage import filesystem

MANIFEST = MANIFEST_FILE
CARD = CARD_FILE
LATEST = "latest"
_VERSION = re.compile(r"^v(\d+)$")
_CHUNK = 1 << 20
_MAX_ATTEMPTS = 1000
#: Seconds after which a staging directory (``.tmp-*``) is taken for the leftover of a
#: publisher killed outright (SIGKILL, a lost machine), whose clean-up never ran: no
#: publish takes a day, and each leftover holds a whole model.
STALE_AFTER_S = 24 * 3600


def is_stale(mtimes: list[float]) -> bool:
    """Whether a leftover whose files were last written at ``mtimes`` (epoch seconds) is
    older than :data:`STALE_AFTER_S` (no times: not known to be)."""
    import time

    return bool(mtimes) and time.time() - max(mtimes) > STALE_AFTER_S


class Registry:
    """One model name in a registry: ``Registry("s3://bucket/models", "ner")``."""

    def __init__(self, uri: str, model_name: str) -> None:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", model_name):
            raise ValueError(f"model name is {model_name!r}, but must be letters, digits, '_', '-', '.' "
                             "(starting with a letter or digit)")
        if "://" in uri and "?" in uri:
            # A reference is <registry>/<model>@vN: a query after the registry would sit in the
            # middle of it, and every version's URI printed for pulling would carry it wrongly.
            raise ValueError(f"registry is {uri!r}, which has a query ('?…'); give the registry without it and the "
                             "endpoint or region through the environment instead (AWS_ENDPOINT_URL, "
                             "AWS_DEFAULT_REGION for s3://), which pyarrow reads")
        if not uri.strip().split("://", 1)[-1].strip("/"):
            # An unset variable (`--registry "$REGISTRY"`, or "$REG/") would otherwise publish
            # into the current directory.
            raise ValueError(f"registry is {uri!r}, which names no directory; give the registry's directory or "
                             "URI (a local path, s3://bucket/models, gs://bucket/models)")
        self.fs, root = filesystem(uri.rstrip("/"))
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        if self.local:
            root = os.path.abspath(os.path.expanduser(root))
        self.registry_root = root
        self.model_name = model_name
        self.root = f"{root}/{model_name}"
        # A local registry is named by its absolute path: the model card and the "pull it
        # with" hint are read from other directories.
        self.uri = self.root if self.local and "://" not in uri else f"{uri.rstrip('/')}/{model_name}"

    # -- reading -------------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Existing version numbers, ascending."""
        if not self.exists():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root))
        found = (_VERSION.match(i.base_name) for i in infos if i.type == pafs.FileType.Directory)
        return sorted(int(m.group(1)) for m in found if m)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.root).type == pafs.FileType.Directory

    def models(self) -> list[str]:
        """Names of the models in this registry (directories next to this one); none when the
        registry itself does not exist (a mistyped path or bucket)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.registry_root, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory
                      and not i.base_name.startswith(".") and not _VERSION.match(i.base_name))

    def is_model_root(self) -> bool:
        """Whether the registry URI given is itself a model (it holds ``latest``): a
        reference that named the model twice."""
        return self.fs.get_file_info(f"{self.registry_root}/{LATEST}").type == pafs.FileType.File

    def check_publishable(self) -> None:
        """Refuse, before any work, a registry URI that publishing would write inside
        something else: a file, a published version's directory (as promote prints it), or
        a model's own directory (it holds ``latest``). Promote would otherwise publish
        ``ner/v1/ner/v1``, which leaves v1 unpullable, or ``ner/ner/v1``, which never
        becomes the model's latest.

        Raises:
            ValueError: naming the registry and the URI to give instead.
        """
        info = self.fs.get_file_info(self.registry_root)
        given = self.uri.rsplit("/", 1)[0]
        if info.type == pafs.FileType.File:
            raise ValueError(f"registry is {given}, which is a file; give a directory (created if missing) or an "
                             "object-store URI")
        if info.type != pafs.FileType.Directory:
            return
        above, _, base = given.rpartition("/")
        if _VERSION.match(base) and self.fs.get_file_info(f"{self.registry_root}/{MANIFEST}").type == \
                pafs.FileType.File:
            registry, _, model = above.rpartition("/")
            raise ValueError(f"registry is {given}, which is a published version of model {model!r}; give the "
                             f"registry it is in: --registry {registry} --model-name {model}")
        if self.is_model_root():
            raise ValueError(f"registry is {given}, which is itself a model (it holds {LATEST} and its versions); "
                             f"give the registry it is in: --registry {above} --model-name {base}")

    def latest(self) -> int | None:
        """The version ``latest`` points to (``None`` before the first publish)."""
        path = f"{self.root}/{LATEST}"
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as f:
            text = f.read().decode("utf-8").strip()
        m = _VERSION.match(text)
        if not m:
            versions = ", ".join(f"v{v}" for v in self.versions()) or "none"
            raise ValueError(f"{self.uri}/{LATEST} holds {text!r}, not a version like 'v3': it was edited by hand, "
                             f"or cut off by a crash while it was written. Fix: write the version it should point "
                             f"to into it (versions there: {versions})")
        return int(m.group(1))

    def manifest(self, version: int) -> dict[str, Any] | None:
        """The manifest of ``version``, or None where it is missing or unreadable (an
        interrupted object-store copy: such a version never verifies)."""
        try:
            with self.fs.open_input_stream(f"{self.version_path(version)}/{MANIFEST}") as f:
                found = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def holds(self, hashes: dict[str, dict[str, Any]]) -> int | None:
        """The newest version when it holds exactly these model files (``{name: {"sha256",
        "size"}}``, the card aside), else None.

        Only the newest counts: publishing a model that an older version holds is how it
        becomes ``latest`` again (``latest`` only moves forward).
        """
        versions = self.versions()
        if not versions:
            return None
        found = self.manifest(versions[-1]) or {}
        files = found.get("files")
        if not isinstance(files, dict):
            return None
        if {name: want for name, want in files.items() if name != CARD} != hashes:
            return None
        # Only a version that verifies: object-store publishers racing into one version
        # leave one's manifest over the other's files (Registry._claim), and "promote again"
        # must then publish afresh, not point latest at that mix.
        stored = self.file_hashes(self.version_path(versions[-1]))
        stored.pop(MANIFEST, None)
        return versions[-1] if stored == files else None

    def version_path(self, version: int) -> str:
        return f"{self.root}/v{version}"

    def files(self, path: str) -> list[str]:
        """Names (relative to ``path``) of every file under ``path``."""
        infos = self.fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return sorted(i.path[len(path) + 1:] for i in infos if i.type == pafs.FileType.File)

    def file_hashes(self, path: str) -> dict[str, dict[str, Any]]:
        """``{relative name: {"sha256", "size"}}`` of every file under ``path`` (re-read now)."""
        out = {}
        for name in self.files(path):
            with self.fs.open_input_stream(f"{path}/{name}") as f:
                out[name] = hash_stream(f)
        return out

    # -- publishing ----------------------------------------------------------------------
    def publish(self, files: dict[str, Path], manifest: dict[str, Any],
                card: Callable[[int], str]) -> int:
        """Publish a new version; returns its number.

        Args:
            files: ``{name in the version: local file}`` (the model directory's files).
            manifest: Everything about the model; ``version`` and ``files`` (sha256 and
                size of every file, the card included) are filled in here.
            card: Renders ``MODEL_CARD.md`` for a version number (the number is only
                final once the rename succeeds, so the card may be rendered again).
        """
        self.fs.create_dir(self.root, recursive=True)
        self._remove_stale_staging()
        tmp = f"{self.root}/.tmp-{uuid.uuid4().hex}"
        try:
            hashes = {name: self._upload(src, f"{tmp}/{name}") for name, src in sorted(files.items())}
            version = max([0, *self.versions(), self.latest() or 0]) + 1
            for _ in range(_MAX_ATTEMPTS):
                self._stage_metadata(tmp, version, hashes, manifest, card)
                if self._claim(tmp, version):
                    break
                version = max([version, *self.versions()]) + 1  # someone took it meanwhile
            else:
                raise RuntimeError(f"could not claim a version under {self.uri} in {_MAX_ATTEMPTS} attempts")
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.delete_dir(tmp)
            raise
        try:
            self.advance_latest(version)
        except OSError as exc:
            # The version is published and stays (versions are immutable); say so, so a
            # retry does not publish the same model again as the next version.
            raise OSError(f"published {self.uri}/v{version}, but moving {LATEST} to it failed ({exc}); it can be "
                          f"pulled as {self.uri}@v{version}. To make it latest, fix the registry's permissions "
                          f"and promote again (that moves {LATEST} to v{version} and publishes nothing new), or "
                          f"write 'v{version}' into {self.uri}/{LATEST}") from exc
        return version

    def _remove_stale_staging(self) -> None:
        """Remove ``.tmp-*`` staging directories whose newest file is older than
        :data:`STALE_AFTER_S` (one with no file time to read, as some stores give none, stays)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        for info in infos:
            if info.type != pafs.FileType.Directory or not info.base_name.startswith(".tmp-"):
                continue
            files = self.fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
            times = [f.mtime.timestamp() for f in files if f.type == pafs.FileType.File and f.mtime is not None]
            if is_stale(times):
                with contextlib.suppress(OSError):  # another promote removing it too
                    self.fs.delete_dir(info.path)

    def _upload(self, src: Path, dest: str) -> dict[str, Any]:
        self.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        with open(src, "rb") as f, self.fs.open_output_stream(dest) as out:
            return hash_stream(f, copy_to=out)

    def _write(self, dest: str, data: bytes) -> dict[str, Any]:
        self.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(dest) as out:
            out.write(data)
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def _stage_metadata(self, tmp: str, version: int, hashes: dict[str, Any],
                        manifest: dict[str, Any], card: Callable[[int], str]) -> None:
        """Write the card and the manifest for ``version`` into ``tmp`` and verify every file."""
        listed = dict(hashes)
        listed[CARD] = self._write(f"{tmp}/{CARD}", card(version).encode("utf-8"))
        # The version names itself (model and number): pull refuses a copy under another name.
        full = {**manifest, "model_name": self.model_name, "version": version, "files": dict(sorted(listed.items()))}
        text = json.dumps(full, indent=2, sort_keys=True, default=str) + "\n"
        self._write(f"{tmp}/{MANIFEST}", text.encode("utf-8"))
        found = self.file_hashes(tmp)
        found.pop(MANIFEST, None)
        for name in sorted(set(listed) | set(found)):
            if found.get(name) != listed.get(name):
                raise OSError(f"{self.uri}: uploaded {name} does not match what was sent "
                              f"(sent {listed.get(name)}, stored {found.get(name)}); nothing was published")

    def _claim(self, tmp: str, version: int) -> bool:
        """Move ``tmp`` to ``v<version>``; False when that version exists already."""
        dest = self.version_path(version)
        if self.local:
            try:
                os.rename(tmp, dest)  # atomic; fails if dest is a non-empty directory
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False
                raise
            return True
        if self.fs.get_file_info(dest).type != pafs.FileType.NotFound:
            return False
        # No directory rename on object stores: copy file by file, the manifest last, so
        # an interrupted copy has no manifest and never verifies.
        names = sorted(self.files(tmp), key=lambda n: n == MANIFEST)
        self.fs.create_dir(dest, recursive=True)
        for name in names:
            self.fs.create_dir(f"{dest}/{name}".rsplit("/", 1)[0], recursive=True)
            self.fs.copy_file(f"{tmp}/{name}", f"{dest}/{name}")
        # A second publisher that found the same version free copies into it too; the
        # version then holds a mix. Re-reading it is the only way to know on a store
        # without an atomic claim: fail loudly rather than report success.
        staged, stored = self.file_hashes(tmp), self.file_hashes(dest)
        if stored != staged:
            differ = sorted(n for n in set(staged) | set(stored) if staged.get(n) != stored.get(n))
            raise OSError(f"{self.uri}/v{version} does not hold what this promote wrote ({', '.join(differ)} "
                          "differ): another promote published the same version at the same time, which "
                          "object stores cannot prevent. Run one promote per model name at a time; "
                          f"check v{version} with `nerkit pull {self.uri}@v{version}` and promote again")
        self.fs.delete_dir(tmp)
        return True

    def advance_latest(self, version: int) -> int | None:
        """Point ``latest`` at ``version`` unless it already points at a newer one; returns
        the version it pointed at before (None: none)."""
        with self._latest_lock():
            current = self.latest()
            if current is not None and current >= version:
                return current
            tmp = f"{self.root}/.{LATEST}.tmp-{uuid.uuid4().hex}"
            try:
                self._write(tmp, f"v{version}\n".encode())
                if self.local:
                    # On disk before the move: after a power loss `latest` is the old
                    # pointer or the new one, never an empty file.
                    fd = os.open(tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                self.fs.move(tmp, f"{self.root}/{LATEST}")  # replaces the old pointer in one step
            except BaseException:
                with contextlib.suppress(OSError):
                    self.fs.delete_file(tmp)
                raise
        return current

    def publishing(self):
        """Hold the model name for one promote's "already published?" check and its
        publish (a file lock on local filesystems; nothing on object stores, where one
        promote per model name at a time is the user's to keep). Without it, two runs of
        one release pipeline both found the model unpublished and published it twice."""
        if self.local:
            self.fs.create_dir(self.root, recursive=True)
        return self._lock(".publish.lock")

    def _latest_lock(self):
        return self._lock(".latest.lock")

    @contextlib.contextmanager
    def _lock(self, name: str):
        """An exclusive ``flock`` on ``root/name`` (local filesystems; a no-op elsewhere)."""
        if not self.local:
            yield
            return
        import fcntl

        with open(f"{self.root}/{name}", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def hash_stream(stream, copy_to=None) -> dict[str, Any]:
    """``{"sha256", "size"}`` of a readable stream, optionally writing it to ``copy_to`` as it goes."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return {"sha256": digest.hexdigest(), "size": size}
