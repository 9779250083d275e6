"""Filter, sort and cut the trial tables: the library behind ``nerkit trials``.

Example:
    >>> from tune.parquet import read_tables                                # doctest: +SKIP
    >>> trials, history = read_tables("runs/s1")                            # doctest: +SKIP
    >>> q = TrialQuery(stop_reasons=("completed",), where=("param_o_weight < 0.5",), top=3)
    >>> select_trials(trials, q)                                            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tune.stop_reasons import REASONS
from tune.where import where_mask

#: Ray Tune's trial statuses (``Trial.status``).
STATUSES = ("PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR")
#: The statuses of a trial that has not ended (its stop_reason is "").
UNENDED_STATUSES = ("PENDING", "RUNNING", "PAUSED")
DEFAULT_SORT = "best_dev_f1"
#: Names for a trial that has not ended: "unfinished" is what the compact view shows
#: (Ray's snapshot cannot tell a running trial from one left by a stopped search).
NOT_ENDED = ("running", "unfinished")


@dataclass(frozen=True)
class TrialQuery:
    """What to show of a trial table (every field optional)."""

    sort: str | None = None               # None: best_dev_f1 (trials) / as recorded (history)
    ascending: bool = False               # trials sort descending unless asked
    top: int | None = None                # keep the first N rows after sorting
    status: tuple[str, ...] = ()          # Ray statuses to keep (any case)
    stop_reasons: tuple[str, ...] = ()    # stop reasons to keep (tune.stop_reasons.REASONS)
    where: tuple[str, ...] = ()           # filters, all must hold (tune.where)
    columns: tuple[str, ...] = ()         # columns to keep, in this order

    def __post_init__(self) -> None:
        if self.top is not None and self.top < 1:
            raise ValueError(f"top is {self.top}, but must be >= 1 (or unset for all rows)")
        bad = [s for s in self.status if s.upper() not in STATUSES]
        if bad:
            raise ValueError(f"status {bad} unknown; allowed are {list(STATUSES)}")
        bad = [r for r in self.stop_reasons if r not in (*REASONS, *NOT_ENDED)]
        if bad:
            raise ValueError(f"stop reason {bad} unknown; allowed are {[*REASONS, *NOT_ENDED]} "
                             "('running' or 'unfinished': trials that have not ended)")


def split_list(values: Iterable[str] | None) -> tuple[str, ...]:
    """Repeatable options that also take comma lists: ``["a,b", "c"]`` → ``("a", "b", "c")``.

    >>> split_list(["asha,collapsed", "error"])
    ('asha', 'collapsed', 'error')
    """
    return tuple(p.strip() for v in values or () for p in v.split(",") if p.strip())


def _check_columns(df, names: Iterable[str], option: str) -> None:
    unknown = [n for n in names if n not in df.columns]
    if unknown:
        raise ValueError(f"{option} names unknown column(s) {unknown}; columns are: "
                         f"{', '.join(map(str, df.columns))}")


def _trial_filter(trials, q: TrialQuery):
    """Rows of ``trials`` passing the status and stop-reason filters."""
    keep = trials
    if q.status:
        keep = keep[keep["status"].str.upper().isin([s.upper() for s in q.status])]
    if q.stop_reasons:
        # A trial that has not ended has stop_reason "" and is asked for as "running".
        reasons = keep["stop_reason"].fillna("").replace("", "running")
        wanted = {"running" if r in NOT_ENDED else r for r in q.stop_reasons}
        keep = keep[reasons.isin(wanted)]
    return keep


def _finish(df, q: TrialQuery, default_sort: list[str], default_ascending: bool):
    for expr in q.where:
        df = df[where_mask(df, expr)]
    sort = [q.sort] if q.sort else [c for c in default_sort if c in df.columns]
    _check_columns(df, sort, "--sort")
    ascending = q.ascending if q.sort else default_ascending
    if sort:
        df = df.sort_values(sort, ascending=ascending, na_position="last", kind="stable")
    if q.top is not None:
        df = df.head(q.top)
    if q.columns:
        _check_columns(df, q.columns, "--columns")
        df = df[list(q.columns)]
    return df.reset_index(drop=True)


def select_trials(trials, q: TrialQuery):
    """The trials table filtered, sorted (best dev F1 first by default) and cut per ``q``.

    Raises:
        ValueError: an unknown column in ``sort``/``columns``/``where`` (the message lists
            the columns), or a ``where`` that is not a simple comparison.
    """
    return _finish(_trial_filter(trials, q), q, [DEFAULT_SORT], q.ascending)


def select_history(history, trials, q: TrialQuery):
    """History rows of the trials passing ``q``'s status/stop-reason filters, then ``q``'s
    ``where``/``sort``/``top``/``columns`` on the history columns (default order: as
    recorded, i.e. trial by trial, evaluation by evaluation)."""
    ids = set(_trial_filter(trials, q)["trial_id"])
    return _finish(history[history["trial_id"].isin(ids)], q, [], True)
