"""YAML loading that remembers the line of every key, so errors can name it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from nerkit.errors import not_utf8


#: PyYAML's words for a line indented unlike its neighbours (or a ': ' in an unquoted value).
_INDENT_PROBLEMS = ("mapping values are not allowed", "expected <block end>")


def load_with_lines(path: str | Path, what: str = "a YAML file") -> tuple[Any, dict[tuple, int]]:
    """Parse ``path``; return the value and ``{key path: 1-based line}``.

    Key paths are tuples of mapping keys and list indexes, e.g.
    ``("params", "o_weight", "low")``. A key given twice in one mapping is refused
    (PyYAML would keep the last silently). ``what`` names the file expected, for the
    error when there is none.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give {what}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give {what}")
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of line 1.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise not_utf8(path) from None  # a DataError (ValueError) naming the line and the fix
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or exc
        # A tab is no YAML indentation, and PyYAML's message does not say so.
        fix = (". Fix: indent with spaces, not tabs" if "'\\t'" in str(problem) else
               ". Fix: check this line's indentation against the lines above it, and that a value with ': ' "
               "in it is quoted" if any(m in str(problem) for m in _INDENT_PROBLEMS) else "")
        raise ValueError(f"{where}: not valid YAML ({problem}){fix}") from None
    try:
        # A JSON file (a stored nerkit_config.json) is YAML, but YAML reads JSON's escape of
        # a character past U+FFFF ("\\ud83c\\udf55") as two lone surrogates: read JSON as JSON.
        value = json.loads(text)
    except ValueError:
        pass
    lines: dict[tuple, int] = {}
    if node is not None:
        _walk(node, (), lines, path)
    return value, lines


def _walk(node: yaml.Node, prefix: tuple, lines: dict[tuple, int], path: Path) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen and key != "<<":  # "<<" merges: one per mapping is YAML's rule, not ours
                # PyYAML keeps the last silently: a second `params:` would drop the first.
                raise ValueError(f"{path}:{line}: {'.'.join(map(str, prefix + (key,)))} is given twice (lines "
                                 f"{seen[key]} and {line}). Fix: keep one")
            seen[key] = line
            lines[prefix + (key,)] = line
            _walk(value_node, prefix + (key,), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, prefix + (i,), lines, path)
