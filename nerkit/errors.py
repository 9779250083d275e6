"""User-facing data errors that name the file, the line and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: names the file, the line (or record number) and the fix.

    Args:
        source: Path of the file (or dataset) the bad record came from.
        line: 1-based line number (JSONL, CoNLL) or record number (datasets, parquet);
            0 when the problem concerns the whole file.
        problem: What is wrong, with the offending value.
        fix: How to fix it.
    """

    def __init__(self, source: str, line: int, problem: str, fix: str = "") -> None:
        self.source = str(source)
        self.line = int(line)
        self.problem = problem
        self.fix = fix
        where = f"{self.source}:{self.line}" if self.line else self.source
        message = f"{where}: {problem}"
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)


def not_utf8(path) -> DataError:
    """The DataError for a file that is not UTF-8, naming the first line that is not.

    Decoding errors surface while a text file is read in chunks, where the line number
    is lost; this re-reads the bytes line by line to find it. Lines are counted as the
    readers count them (universal newlines: ``\n``, ``\r\n`` or a lone ``\r`` ends a
    line), so a file saved with old Mac line endings is not reported as all line 1.
    """
    line_no = 0
    with open(path, "rb") as handle:
        for chunk in handle:  # each chunk ends at a b"\n" (or at the end of the file)
            body = chunk.removesuffix(b"\n").removesuffix(b"\r")
            # UTF-8 never has b"\r" inside a multi-byte character, so splitting is safe.
            for raw in body.split(b"\r"):
                line_no += 1
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return not_utf8_line(str(path), line_no, raw, exc)
    return DataError(str(path), 0, "not UTF-8 text", "save the file as UTF-8")


def not_utf8_line(source: str, line_no: int, raw: bytes, exc: UnicodeDecodeError) -> DataError:
    """The DataError for line ``line_no`` of ``source``, whose bytes ``raw`` failed to decode."""
    if line_no == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16's byte-order mark (Windows tools save "Unicode" so): latin1 would garble it.
        return DataError(source, line_no, "UTF-16 text, not UTF-8 (it starts with a UTF-16 byte-order mark)",
                         "save the file as UTF-8 (e.g. iconv -f utf-16 -t utf-8)")
    bad = raw[exc.start:exc.start + 4]
    return DataError(source, line_no, f"not UTF-8 text: byte(s) {bad!r} at column {exc.start + 1}",
                     "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")
