"""Safe row filters for the trial tables: ``"param_o_weight < 0.5"`` and nothing more.

A filter is parsed with :mod:`ast` and evaluated here on pandas columns; it is never
handed to ``eval`` or ``DataFrame.query``, so a filter typed on the command line can
only compare columns with literal values. Allowed: comparisons (``<``, ``<=``, ``>``,
``>=``, ``==``, ``!=``, chained ``0.1 < x < 0.5``, ``x in ['a', 'b']``,
``x not in (...)``) of an existing column with a number, string, ``True``/``False``
or ``None`` (``x == None`` selects missing values, as ``None`` in an ``in`` list
does), joined by ``and``/``or``/``not`` and parentheses. A missing value satisfies no
other comparison, so ``not x > 0.5`` keeps it. A literal must be of the column's kind
(number, text, True/False): ``param_batch_size == '16'`` is an error, not an empty
selection.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"param_o_weight": [0.2, 0.7], "status": ["TERMINATED", "ERROR"]})
    >>> df[where_mask(df, "param_o_weight < 0.5 and status == 'TERMINATED'")].index.tolist()
    [0]
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_OP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


def _help(df) -> str:
    """What a filter looks like, with a numeric column this table has (the history table
    has no param_ columns)."""
    from pandas.api import types

    numeric = [c for c in df.columns if types.is_numeric_dtype(df[c]) and not types.is_bool_dtype(df[c])]
    column = next((c for c in ("param_o_weight", "dev_f1", "best_dev_f1") if c in numeric), None)
    example = f"\"{column or (numeric[0] if numeric else 'param_o_weight')} < 0.5\""
    return (f"a comparison of a column with a literal, e.g. {example}, "
            "\"stop_reason in ['asha', 'collapsed']\", joined by and/or/not")


class _Invalid(Exception):
    """Internal: why an expression was rejected (turned into one ValueError at the top)."""


def where_mask(df, expr: str):
    """A boolean Series selecting the rows of ``df`` for which ``expr`` holds.

    Args:
        df: The table (a pandas DataFrame).
        expr: The filter (see module doc).

    Returns:
        A boolean pandas Series aligned with ``df``; missing values never match a
        comparison (except ``== None``).

    Raises:
        ValueError: ``expr`` is not a simple comparison expression over ``df``'s
            columns; the message lists the columns.
    """
    source = expr.strip()
    try:
        tree = ast.parse(source, mode="eval")
        for node in ast.walk(tree):
            # The literal as typed: `trial_id == 12e45678` is the number 1.2e+52 to Python,
            # and the fix to suggest is '12e45678', not '1.2e+52'.
            node.nerkit_text = ast.get_source_segment(source, node)
        return _eval(tree.body, df)
    except SyntaxError as exc:
        raise _error(expr, f"it does not parse ({exc.msg}){_quote_hint(expr)}", df) from None
    except _Invalid as exc:
        raise _error(expr, str(exc), df) from None
    except RecursionError:  # in the parser or in _eval
        raise _error(expr, "it is nested too deeply", df) from None


#: An unquoted word that starts with a digit (a trial id such as 15f4924b or 01234567):
#: Python reads it as a malformed number, so it never reaches the "needs quotes" check of
#: a bare name. A signed exponent is part of the word (1e-4, not "1e" and "4").
_BARE_WORD = re.compile(r"(?<![\w.])\d\w*(?:(?<=[eE])[+-]\w+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _quote_hint(expr: str) -> str:
    """``; a text value needs quotes: '15f4924b'`` where ``expr`` holds such a word."""
    words = [w for w in _BARE_WORD.findall(_QUOTED.sub("''", expr)) if not _is_number(w)]
    return f"; a text value needs quotes: '{words[0]}'" if words else ""


def _is_number(word: str) -> bool:
    """Whether Python reads ``word`` as a number (``1e-4``, ``1_000``; not ``01234567``)."""
    try:
        ast.literal_eval(word)
    except (SyntaxError, ValueError):
        return False
    return True


def _error(expr: str, why: str, df) -> ValueError:
    shown = expr if len(expr) <= 200 else expr[:200] + "…"
    return ValueError(f"--where {shown!r} is not allowed: {why}. Use {_help(df)}; "
                      f"columns are: {', '.join(map(str, df.columns))}")


def _eval(node: ast.AST, df):
    if isinstance(node, ast.BoolOp):
        masks = [_eval(v, df) for v in node.values]
        out = masks[0]
        for m in masks[1:]:
            out = (out & m) if isinstance(node.op, ast.And) else (out | m)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~_eval(node.operand, df)
    if isinstance(node, ast.Compare):
        return _compare(node, df)
    raise _Invalid(f"{ast.unparse(node)!r} is not a comparison")


def _compare(node: ast.Compare, df):
    """``a < b < c`` is ``a < b and b < c``; each pair needs exactly one column side."""
    operands = [node.left, *node.comparators]
    out = None
    for op, left, right in zip(node.ops, operands, operands[1:]):
        mask = _pair(op, left, right, df)
        out = mask if out is None else out & mask
    return out


def _pair(op: ast.cmpop, left: ast.AST, right: ast.AST, df):
    if isinstance(op, (ast.In, ast.NotIn)):
        column = _column(left, df)
        values = _literal_list(right)
        for element, v in zip(right.elts, values):
            _check_kind(column, v, element)
        # None in the list stands for a missing value, as in `x == None`; otherwise a
        # missing value satisfies neither `x in [...]` nor `x not in [...]`.
        present = column.notna()
        hit = column.isin([v for v in values if v is not None]).fillna(False).astype(bool) & present
        if None in values:
            hit = hit | ~present
        return (present & ~hit if isinstance(op, ast.NotIn) else hit).astype(bool)
    if type(op) not in _COMPARE:
        raise _Invalid(f"operator {type(op).__name__} is not supported")
    if isinstance(left, ast.Name) and not isinstance(right, ast.Name):
        column, value, fn, typed = _column(left, df), _literal(right), _COMPARE[type(op)], right
    elif isinstance(right, ast.Name) and not isinstance(left, ast.Name):
        # `0.5 > x` is `x < 0.5`: swap the operands, keep the column on the left.
        column, value, typed = _column(right, df), _literal(left), left
        fn = lambda a, b, f=_COMPARE[type(op)]: f(b, a)  # noqa: E731
    else:
        names = [n.id for n in (left, right) if isinstance(n, ast.Name)]
        unknown = [n for n in names if n not in df.columns]
        if len(names) == 2 and len(unknown) == 1:
            # `param_loss == focal`: an unquoted text value reads as a column name.
            known = next(n for n in names if n != unknown[0])
            raise _Invalid(f"{unknown[0]!r} is not a column; a text value needs quotes: "
                           f"{known} {_OP_TEXT.get(type(op), '==')} '{unknown[0]}'")
        raise _Invalid(f"{ast.unparse(left)!r} vs {ast.unparse(right)!r}: compare one column "
                       "with one literal value")
    if value is None:
        if isinstance(op, ast.Eq):
            return column.isna()
        if isinstance(op, ast.NotEq):
            return column.notna()
        raise _Invalid("None can only be compared with == or !=")
    _check_kind(column, value, typed)
    try:
        mask = fn(column, value)
    except (TypeError, OverflowError) as exc:
        raise _Invalid(f"column {column.name!r} (type {column.dtype}) cannot be compared with "
                       f"{value!r} ({exc})") from None
    # NaN != x is True in pandas; a missing value satisfies no comparison, `!=` included.
    return (mask.fillna(False).astype(bool) & column.notna()).astype(bool)


def _kind_of_column(column) -> str:
    from pandas.api import types

    if types.is_bool_dtype(column):
        return "True/False"
    if types.is_numeric_dtype(column):
        return "number"
    # An object column may still hold only bools or numbers (with a None among them).
    inferred = types.infer_dtype(column, skipna=True)
    if inferred == "boolean":
        return "True/False"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    return "text"


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True/False"
    return "number" if isinstance(value, (int, float)) else "text"


def _check_kind(column, value: Any, node: ast.AST | None = None) -> None:
    """A literal of another kind than its column's would match nothing (``16`` is not
    ``'16'``): say so instead of selecting no rows."""
    if value is None:
        return
    want, got = _kind_of_column(column), _kind_of_value(value)
    if want == got:
        return
    typed = getattr(node, "nerkit_text", None) or str(value)
    hint = {"text": f"quote it: '{typed}'", "number": "write a number, unquoted",
            "True/False": "write True or False"}[want]
    shown = typed if node is not None and getattr(node, "nerkit_text", None) else repr(value)
    raise _Invalid(f"column {column.name!r} holds {want} values, but {shown} is {got}; {hint}")


def _column(node: ast.AST, df):
    if not isinstance(node, ast.Name):
        raise _Invalid(f"{ast.unparse(node)!r} is not a column name")
    if node.id not in df.columns:
        raise _Invalid(f"unknown column {node.id!r}")
    return df[node.id]


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    raise _Invalid(f"{ast.unparse(node)!r} is not a literal number, string, True/False or None")


def _literal_list(node: ast.AST) -> list[Any]:
    if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        raise _Invalid(f"{ast.unparse(node)!r} after 'in' must be a list of literals like ['a', 'b']")
    return [_literal(e) for e in node.elts]
