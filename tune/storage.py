"""Small file helpers that work for local paths and object stores alike (pyarrow.fs)."""

from __future__ import annotations

import functools

import pyarrow.fs as pafs


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or ``s3://``/``gs://`` URI."""
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)


def split_query(uri: str) -> tuple[str, str]:
    """``(uri without its ?query, "?query" or "")``: a URI's query holds how the storage is
    reached (an endpoint, a region); a local path's "?" is part of the path."""
    base, _, query = uri.partition("?") if "://" in uri else (uri, "", "")
    return base, f"?{query}" if query else ""


def join(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` appended to its path, before its ``?query`` if it has one (an
    endpoint or region the storage needs: ``s3://b/runs?region=x`` + ``s1`` is
    ``s3://b/runs/s1?region=x``; appended after it, the name went into the region)."""
    base, query = split_query(uri)
    return "/".join([base.rstrip("/"), *parts]) + query


def parent(uri: str) -> str:
    """The directory ``uri`` is in, as a URI written the way ``uri`` is (its query kept)."""
    base, query = split_query(uri)
    return base.rstrip("/").rsplit("/", 1)[0] + query


def locate(uri: str, fs: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """``filesystem(uri)``, or, with ``fs`` given, ``uri`` as a path inside it (as Ray's
    storage objects hold paths: no scheme)."""
    return (fs, uri) if fs is not None else filesystem(uri)


def is_file(uri: str, fs: pafs.FileSystem | None = None) -> bool:
    fs, path = locate(uri, fs)
    return fs.get_file_info(path).type == pafs.FileType.File


def is_dir(uri: str, fs: pafs.FileSystem | None = None) -> bool:
    fs, path = locate(uri, fs)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def read_bytes(uri: str, fs: pafs.FileSystem | None = None) -> bytes | None:
    """A file's bytes, or None when there is no such file (``locate`` for ``fs``)."""
    fs, path = locate(uri, fs)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def read_text(uri: str, fs: pafs.FileSystem | None = None) -> str | None:
    """A file's text, or None when there is no such file (``locate`` for ``fs``)."""
    data = read_bytes(uri, fs)
    return None if data is None else data.decode("utf-8")


def write_bytes(uri: str, data: bytes, fs: pafs.FileSystem | None = None) -> None:
    """Write a file whose directory exists (``locate`` for ``fs``)."""
    fs, path = locate(uri, fs)
    with fs.open_output_stream(path) as f:
        f.write(data)


def write_text(uri: str, text: str) -> None:
    """Write a file, creating its directory."""
    fs, path = filesystem(uri)
    # A bare file name ("report.html") has no directory to make: rsplit would give the
    # name itself, and create_dir would make a directory where the file is to go.
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.create_dir(parent, recursive=True)
    write_bytes(path, text.encode("utf-8"), fs)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def uri_in(experiment: str, path: str) -> str:
    """``path``, a path inside ``experiment``'s filesystem as Ray records checkpoints (no
    scheme, no account or host), as a URI written the way ``experiment`` is.

    ``experiment`` itself is the template: ``abfs://container@account.dfs.core.windows.net/runs``
    keeps its account, ``hdfs://host:8020/runs`` its host and ``gs://`` its spelling,
    none of which Ray's path holds. A local experiment, or a ``path`` that is a URI
    already, gives ``path`` unchanged.
    """
    if "://" not in experiment or "://" in path:
        return path
    base, suffix = split_query(experiment)  # the query: an endpoint or region the storage needs
    root = _root(experiment)
    if path == root or path.startswith(root + "/"):
        return base.rstrip("/") + path[len(root):] + suffix
    return f"{base.split('://')[0]}://{path}{suffix}"  # outside the experiment: the scheme is all that is known


@functools.lru_cache(maxsize=64)
def _root(experiment: str) -> str:
    # Once per experiment: an S3 URI without a region makes pyarrow look the bucket's up.
    return filesystem(experiment)[1].rstrip("/")  # with its query: a region given there spares a lookup
