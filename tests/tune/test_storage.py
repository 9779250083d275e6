"""tune.storage: the file helpers shared by local paths and object stores."""

from __future__ import annotations

from tune.storage import read_text, write_text


def test_write_text_makes_missing_directories_but_not_the_file_itself(tmp_path, monkeypatch):
    # A bare file name ("report.html", as `nerkit report --out report.html` passes it) is a
    # file in the current directory: it once became a directory of that name, and the write
    # into it failed. A path with missing directories gets them made.
    monkeypatch.chdir(tmp_path)
    write_text("report.html", "<html></html>")
    assert (tmp_path / "report.html").read_text() == "<html></html>"
    write_text(str(tmp_path / "a" / "b" / "c.txt"), "x")
    assert read_text(str(tmp_path / "a" / "b" / "c.txt")) == "x"
