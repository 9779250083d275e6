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
