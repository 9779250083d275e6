"""The data doctor: every check a dataset should pass before anyone trains on it.

:func:`run_doctor` runs all checks and collects their results (a failing check
does not stop the others) into a :class:`DoctorReport`:

1. ``data``: the files read and BIO-valid (else the error, with file:line and fix).
2. ``tokenizer``: a fast tokenizer for the model.
3. ``alignment preview``: a few records as subwords with the label each one gets (or
   ``alignment`` failing: an entity word the tokenizer gives no subword, with file:line).
4. ``label distribution``: counted tokens per label, per split.
5. ``truncation``: records and words cut by ``max_length``.
6. ``model labels`` (only with ``model=``): the model config's labels vs the data's.
7. ``baseline``: the all-``O`` token accuracy, the score of a model that learned nothing.
8. ``metric sanity``: gold labels scored as predictions through the metric path give F1 = 1.
9. ``overlap``: dev and test records that repeat a train record's words.

Example:
    >>> report = run_doctor("data/orders.jsonl")  # doctest: +SKIP
    >>> report.ok, [c.status for c in report.checks]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from nerkit.alignment import align_records, load_tokenizer
from nerkit.data import SPLITS, DataConfig
from nerkit.doctor._checks import (
    check_baseline,
    check_distribution,
    check_metric,
    check_model_labels,
    check_overlap,
    check_preview,
    check_truncation,
    check_word_split,
)
from nerkit.doctor._data_check import check_data
from nerkit.doctor._report import STATUSES, Check, DoctorReport
from nerkit.errors import DataError
from nerkit.model import DEFAULT_MAX_LENGTH

__all__ = ["STATUSES", "Check", "DoctorReport", "run_doctor"]


def run_doctor(
    data: str | None = None,
    model: str | None = None,
    format: str = "auto",
    on_invalid: str = "error",
    max_length: int = DEFAULT_MAX_LENGTH,
    preview: int = 3,
    label_names: Sequence[str] | None = None,
    train: str | None = None,
    dev: str | None = None,
    test: str | None = None,
    split_seed: int = 13,
) -> DoctorReport:
    """Run every check on ``data`` (``None``: the bundled corpus); see module doc.

    Args:
        data: A data file or directory, as for :class:`nerkit.data.DataConfig`.
        model: Model name or path; its tokenizer is used and its labels compared.
            ``None`` uses the bundled MiniLM's tokenizer and skips the labels check.
        format: ``"auto"`` or a reader format.
        on_invalid: ``"error"``, ``"repair"`` or ``"skip"``.
        max_length: Subword budget per record, as in training.
        preview: How many train records the alignment preview shows.
        label_names: Labels of integer tag ids, in id order (see DataConfig).
        train, dev, test, split_seed: As for :class:`nerkit.data.DataConfig`: the data
            checked is the data ``nerkit train`` and ``nerkit search`` would read with
            the same options.

    Raises:
        ValueError: for an invalid ``format``/``on_invalid``/``max_length``, or a
            ``max_length`` above what the model takes (bad data is reported as a failed
            check instead).
    """
    from nerkit.model import BUNDLED_MODEL, MIN_MAX_LENGTH, check_max_length, model_config, resolve_model

    cfg = DataConfig(path=data, train=train, dev=dev, test=test, format=format, on_invalid=on_invalid,
                     split_seed=split_seed, label_names=tuple(label_names) if label_names is not None else None)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < MIN_MAX_LENGTH:
        # The floor a run's config takes (nerkit.config), or data passing here would fail there.
        raise ValueError(f"max_length is {max_length!r}, but must be an integer >= {MIN_MAX_LENGTH}")
    named = ", ".join(f"{k} {v}" for k, v in (("train", train), ("dev", dev), ("test", test)) if v)
    report = DoctorReport(data=", ".join(x for x in (data, named) if x) or "<bundled corpus>",
                          model=model or BUNDLED_MODEL)
    dataset = check_data(cfg, report)
    try:
        tokenizer = load_tokenizer(resolve_model(model or BUNDLED_MODEL))
        report.add("tokenizer", "ok", f"{type(tokenizer).__name__} (fast) from {report.model}")
    except (OSError, ValueError) as exc:
        tokenizer = None
        report.add("tokenizer", "fail", str(exc))
    config = None
    if tokenizer is not None:
        config = model_config(resolve_model(model or BUNDLED_MODEL))
        check_max_length(max_length, tokenizer, config)  # a usage error, as for one below MIN_MAX_LENGTH
    aligned = None
    if dataset is not None and tokenizer is not None:
        try:
            aligned = {
                name: align_records(dataset.split(name), tokenizer, dataset.label_map, max_length)
                for name in SPLITS
            }
        except DataError as exc:  # an entity word this tokenizer drops: the data must change
            report.add("alignment", "fail", str(exc))
    if aligned is not None:
        check_preview(dataset, aligned["train"], tokenizer, preview, report)
        check_distribution(dataset, aligned, report)
        check_truncation(dataset, aligned, tokenizer, max_length, report, config)
    if dataset is not None and model is not None:
        check_model_labels(resolve_model(model), dataset, report)
    if aligned is not None:
        check_baseline(dataset, aligned["dev"], report)
        check_metric(dataset, aligned["dev"], report)
    if dataset is not None:
        check_overlap(dataset, report)
        check_word_split(dataset, report)
    return report
