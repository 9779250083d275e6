"""How ``nerkit trials`` lays a trial table out in a terminal.

Values are never folded mid-number, and never cut without a mark: piped output takes the
width the table needs; in a terminal narrower than the table the least needed columns
are left out (the compact view) or the widest values cut with "…" (a plain table), and
the caller says which.
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


def missing(value) -> bool:
    """None, pandas' NA or NaN: a cell with no value (shown "-", written as JSON null)."""
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _num(value, fmt: str) -> str:
    if missing(value):
        return "-"
    if fmt == ".4g" and isinstance(value, float) and abs(value) >= 1e4:
        fmt = ".1f"  # a wall time of 12345.6 s, not 1.235e+04
    return format(value, fmt)


def _short_names(columns: list[str]) -> dict[str, str]:
    """``param_learning_rate`` → ``lr`` (initials), unless two parameters share initials."""
    names = [c.removeprefix("param_") for c in columns]
    initials = ["".join(p[0] for p in n.split("_") if p) if "_" in n else n for n in names]
    if len(set(initials)) < len(initials):
        initials = names
    return dict(zip(columns, initials))


def _params(row, short: dict[str, str]) -> str:
    parts = []
    for column, label in short.items():
        value = row[column]
        if missing(value):
            continue
        shown = format(value, ".2g") if isinstance(value, float) else str(value)
        parts.append(f"{label}={shown}")
    return " ".join(parts)


def _unended(row) -> str:
    """What a trial without a stop reason is doing. Ray's snapshot records a running trial
    as PENDING (as it does the trials of a stopped search), so one with evaluations is
    "unfinished" (running now, or left to --resume), one without is "pending"."""
    import pandas as pd

    from tune.trial_query import UNENDED_STATUSES

    status = str(row["status"]).lower()
    evaluated = not pd.isna(row["evaluations"]) and row["evaluations"] > 0
    return "unfinished" if status.upper() in UNENDED_STATUSES and evaluated else status


#: The compact view's columns, and the order they are left out in a terminal too narrow
#: for all of them (rich would crop lines at the edge: 123.4 shown as 12, unmarked).
_COMPACT = ("trial", "stop", "searched", "best F1 @ ep", "ratio", "epochs", "wall s")
_DROPPABLE = ("wall s", "epochs", "ratio", "stop")


def compact_view(df, console: Console, width: int | None = None) -> tuple[Table, str, list[str]]:
    """The default view (one line per trial with what decides between trials), its legend,
    and the columns left out to fit ``width`` (None: all of them).

    Seven columns in a light box fit an 80-column terminal: a baseline's name leads its
    searched values, the stop reason stands for the status (a running or pending trial has
    none), ``ratio`` is the last evaluation's entity_pred_ratio, and the parameters take
    the width that is left, folding. In a narrower terminal the least needed columns go,
    named, rather than values cut.
    """
    short = _short_names([c for c in df.columns if c.startswith("param_")])
    rows = []
    for _, r in df.iterrows():
        rows.append({
            "trial": str(r["trial_id"]), "stop": str(r["stop_reason"] or _unended(r)),
            "searched": (f"({r['baseline']}) " if r["baseline"] else "") + _params(r, short),
            "best F1 @ ep": f"{_num(r['best_dev_f1'], '.4f')} @ {_num(r['best_epoch'], '.2f')}",
            "ratio": _num(r["last_entity_pred_ratio"], ".3f"), "epochs": _num(r["epochs_trained"], ".2f"),
            "wall s": _num(r["wall_time_s"], ".1f"),
        })
    dropped: list[str] = []
    while True:
        t = _compact_table([c for c in _COMPACT if c not in dropped], rows, df)
        if width is None or _measure(t, console).minimum <= width:
            break
        if len(dropped) == len(_DROPPABLE):
            # Still too wide: the searched values fold narrower and the number columns give
            # up their header width, so what is cut is marked rather than cropped at the edge.
            t = _compact_table([c for c in _COMPACT if c not in dropped], rows, df, tight=True)
            break
        dropped.append(_DROPPABLE[len(dropped)])
    legend = ", ".join(f"{v}={k.removeprefix('param_')}" for k, v in short.items() if v != k.removeprefix("param_"))
    return t, legend, dropped


def _compact_table(titles: list[str], rows: list[dict[str, str]], df, tight: bool = False) -> Table:
    # Wide enough for every id, whole (an id folded over two lines reads as two ids); a
    # baseline's name leads its searched values, which fold in the width left.
    id_width = max((len(str(i)) for i in df["trial_id"]), default=8)
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for title in titles:
        if title == "searched":
            t.add_column(title, overflow="fold", ratio=1, min_width=None if tight else 12)
        elif title == "trial":
            t.add_column(title, no_wrap=True, min_width=id_width, max_width=id_width)
        else:
            # Whole, or cut with a mark: never a number silently shortened.
            t.add_column(title, no_wrap=True, overflow="ellipsis", min_width=None if tight else len(title))
    for row in rows:
        # Text, not str: a str is read as rich markup, and an error such as "devices
        # [cuda:0] and [rank0]" would show as "devices  and" (or "[/x]" raise).
        t.add_row(*(Text(row[title]) for title in titles))
    return t


def _plain_cells(df) -> list[list[str]]:
    import pandas as pd

    return [[_num(v, ".4g") if isinstance(v, float) or v is pd.NA else str(v) for v in r.tolist()]
            for _, r in df.iterrows()]


def _plain(df, widths: list[int] | None = None) -> Table:
    """The table of ``df``'s columns; ``widths`` caps each column (values cut with "…")."""
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, col in enumerate(df.columns):
        # Never folded: a number split over two lines reads as two numbers, and an id so
        # split cannot be copied into `nerkit trials … --where` (print_whole fits them).
        t.add_column(Text(str(col)), no_wrap=True, overflow="ellipsis",
                     width=widths[i] if widths is not None else None)
    for cells in _plain_cells(df):
        t.add_row(*(Text(cell) for cell in cells))  # not markup (see _compact_table)
    return t


def _measure(table: Table, console: Console):
    # Measured unconstrained: measured within the terminal's width, rich reports a minimum
    # that fits it, then crops the lines it renders.
    return console.measure(table, options=console.options.update_width(100_000))


def _fit_widths(whole: list[int], fixed: list[bool], room: int, least: int = 4) -> list[int] | None:
    """Column widths within ``room`` characters: each column whole if it fits, else the
    widest cut to one common cap; ``fixed`` columns (an id) stay whole. None when even
    ``least`` characters a column do not fit.

    >>> _fit_widths([8, 40, 6, 12], [True, False, False, False], 30)
    [8, 8, 6, 8]
    """
    def total(cap: int) -> int:
        return sum(w if f else min(w, cap) for w, f in zip(whole, fixed))

    if total(least) > room:
        return None
    cap = least
    while cap < max(whole, default=0) and total(cap + 1) <= room:
        cap += 1
    return [w if f else min(w, cap) for w, f in zip(whole, fixed)]


def print_whole(df, console: Console, err_console: Console) -> None:
    """Print ``df`` as a plain table with every value whole. Piped, the lines take the width
    the table needs (rich's 80 columns folded numbers mid-value and gave some columns no
    width); in a terminal narrower than the table, the widest values are cut with "…"
    (rich's own layout gave some columns no width, so they vanished unmarked), columns that
    cannot fit even so are left out from the right, and a note says which and how to see them."""
    table = _plain(df)
    need = _measure(table, console).maximum
    if need <= console.width:
        console.print(table)
        return
    if not console.is_terminal:
        Console(width=need, no_color=console.no_color).print(table)
        return
    cells = _plain_cells(df)
    whole = [max([len(str(c))] + [len(row[i]) for row in cells]) for i, c in enumerate(df.columns)]
    fixed = [c == "trial_id" for c in df.columns]
    shown = len(df.columns)
    # Two characters between columns (collapsed padding), and one at each edge to spare.
    while shown > 1 and _fit_widths(whole[:shown], fixed[:shown], console.width - 2 * shown) is None:
        shown -= 1
    widths = _fit_widths(whole[:shown], fixed[:shown], console.width - 2 * shown) or whole[:shown]
    console.print(_plain(df[list(df.columns[:shown])], widths))
    left_out = [str(c) for c in df.columns[shown:]]
    err_console.print(f"[yellow]note:[/] the table needs {need} columns and the terminal has {console.width}: "
                      "values cut are marked …"
                      + (f", and {', '.join(left_out)} left out" if left_out else "")
                      + "; pick fewer with --columns, or use --csv / --json", highlight=False, soft_wrap=True)


