"""tune.storage: the file helpers shared by local paths and object stores, and a checkpoint
path as Ray records it back to a URI that reaches it."""

from __future__ import annotations

import pytest

from tune.storage import join, parent, read_text, uri_in, write_text


def test_write_text_makes_missing_directories_but_not_the_file_itself(tmp_path, monkeypatch):
    # A bare file name ("report.html", as `nerkit report --out report.html` passes it) is a
    # file in the current directory: it once became a directory of that name, and the write
    # into it failed. A path with missing directories gets them made.
    monkeypatch.chdir(tmp_path)
    write_text("report.html", "<html></html>")
    assert (tmp_path / "report.html").read_text() == "<html></html>"
    write_text(str(tmp_path / "a" / "b" / "c.txt"), "x")
    assert read_text(str(tmp_path / "a" / "b" / "c.txt")) == "x"


@pytest.mark.parametrize("experiment, path, uri", [
    # Azure: Ray's path is container/…; the account lives only in the experiment's URI
    # (pyarrow refuses abfs://container/… with "doesn't contain a valid account name").
    ("abfs://cont@acct.dfs.core.windows.net/runs/s1", "cont/runs/s1/trial_a/checkpoint_000001",
     "abfs://cont@acct.dfs.core.windows.net/runs/s1/trial_a/checkpoint_000001"),
    # gs:// as the user spelt it (pyarrow's type name is "gcs").
    ("gs://bkt/runs/s1/", "bkt/runs/s1/trial_a/checkpoint_000001", "gs://bkt/runs/s1/trial_a/checkpoint_000001"),
    # A query (an endpoint, a region) stays on the URI, after the path.
    ("s3://bkt/runs/s1?region=us-east-1", "bkt/runs/s1/trial_a/checkpoint_000001",
     "s3://bkt/runs/s1/trial_a/checkpoint_000001?region=us-east-1"),
    # Already a URI, or a local search: unchanged.
    ("s3://bkt/runs/s1?region=us-east-1", "s3://other/x", "s3://other/x"),
    ("/data/runs/s1", "/data/runs/s1/trial_a/checkpoint_000001", "/data/runs/s1/trial_a/checkpoint_000001"),
    # Outside the experiment (not written by nerkit): the scheme is all that is known.
    ("gs://bkt/runs/s1", "bkt2/x", "gs://bkt2/x"),
    ("s3://bkt/runs/s1?region=us-east-1", "bkt2/x", "s3://bkt2/x?region=us-east-1"),
])
def test_a_checkpoint_path_becomes_a_uri_written_like_its_experiment(experiment, path, uri):
    assert uri_in(experiment, path) == uri


@pytest.mark.parametrize(("uri", "parts", "joined", "up"), [
    ("s3://b/runs?region=x", ("s1", "search.json"), "s3://b/runs/s1/search.json?region=x", "s3://b?region=x"),
    ("s3://b/runs/", ("s1",), "s3://b/runs/s1", "s3://b"),
    # A local path is a path: a "?" in a directory name is part of it.
    ("/data/what?/runs", ("s1",), "/data/what?/runs/s1", "/data/what?"),
])
def test_a_uri_is_joined_and_climbed_before_its_query(uri, parts, joined, up):
    assert join(uri, *parts) == joined
    assert parent(uri) == up
