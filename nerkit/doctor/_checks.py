"""The doctor's checks after the data loads; each adds one :class:`Check` to the report."""

from __future__ import annotations

import re

from nerkit.alignment import IGNORE, AlignedSplit
from nerkit.data import SPLITS, NerDataset
from nerkit.doctor._report import DoctorReport
from nerkit.hub import load_options, unreachable_note
from nerkit.labels import labels_from_config
from nerkit.model import subword_limit
from nerkit.stats import (format_label_table, label_stats, look_alike_note, look_alike_types, split_apart_note,
                          type_tokens, types_without_tokens)

_GENERIC_LABEL = re.compile(r"LABEL_\d+")
# Subwords shown per preview record: enough to see the alignment, short enough to read.
_PREVIEW_SUBWORDS = 24


def check_preview(
    dataset: NerDataset, aligned: AlignedSplit, tokenizer, n: int, report: DoctorReport
) -> None:
    """Show the first ``n`` train records as subwords with the label each one gets."""
    labels = dataset.label_map.labels
    blocks, rows = [], []
    for i, record in enumerate(dataset.train[:n]):
        subwords = tokenizer.convert_ids_to_tokens(aligned.input_ids[i])[:_PREVIEW_SUBWORDS]
        tags = [labels[y] if y != IGNORE else "-" for y in aligned.labels[i]][:_PREVIEW_SUBWORDS]
        widths = [max(len(s), len(t)) for s, t in zip(subwords, tags)]
        more = " ..." if len(aligned.input_ids[i]) > _PREVIEW_SUBWORDS else ""
        blocks.append(
            f"{record.source}:{record.line}  {' '.join(record.tokens)}\n"
            f"  subwords  {' '.join(s.ljust(w) for s, w in zip(subwords, widths))}{more}\n"
            f"  labels    {' '.join(t.ljust(w) for t, w in zip(tags, widths))}{more}"
        )
        rows.append({"tokens": list(record.tokens), "subwords": subwords, "labels": tags})
    detail = "\n".join(blocks) + "\n('-' = not counted: special token or continuation subword)"
    report.add("alignment preview", "ok", detail, records=rows)


def check_word_split(dataset: NerDataset, report: DoctorReport) -> None:
    """Entity words of pre-split data that `nerkit predict` would split into pieces."""
    apart = split_apart_note(dataset.all_records)
    if apart:
        report.add("word split", "warn", apart)
    elif not any(r.text is None for r in dataset.all_records):
        report.add("word split", "ok", "records hold their text: nerkit predict splits text into words as the "
                                       "readers split it")
    else:
        report.add("word split", "ok", "every entity word of the pre-split data is one word to nerkit predict")


def check_distribution(dataset: NerDataset, aligned: dict, report: DoctorReport) -> None:
    """Label counts per split; warn about entity types with no training tokens."""
    stats = {
        name: label_stats(aligned[name], dataset.label_map, dataset.split(name))
        for name in SPLITS
        if dataset.split(name)
    }
    detail = "\n\n".join(f"[{name}]\n{format_label_table(s)}" for name, s in stats.items())
    unseen = types_without_tokens(stats["train"].counts, dataset.label_map)
    status = "ok"
    if unseen:
        status = "warn"
        detail += f"\n\nentity types with no training tokens (the model cannot learn them): {unseen}"
    typos = look_alike_types({n: s.counts for n, s in stats.items()}, dataset.label_map)
    tokens = {n: type_tokens(s.counts) for n, s in stats.items()}  # per split: {type: tokens}
    if typos:
        status = "warn"
        total = {t: sum(split.get(t, 0) for split in tokens.values()) for t in typos}
        detail += "\n\n" + look_alike_note(typos, total, dataset.all_records)
    scored = [n for n in ("dev", "test") if n in stats]
    only_train = [t for t in dataset.label_map.types if tokens["train"].get(t)
                  and scored and not any(tokens[n].get(t) for n in scored)]
    if only_train:
        status = "warn"
        detail += f"\n\nentity types only in train (no dev or test token scores them): {only_train}"
    report.add("label distribution", status, detail, **{n: s.to_dict() for n, s in stats.items()})


def check_truncation(
    dataset: NerDataset, aligned: dict, tokenizer, max_length: int, report: DoctorReport, config=None
) -> None:
    """Records and words cut by ``max_length``, the length that would fit them all, and
    the dev/test F1 the cut leaves within reach."""
    from nerkit.metrics import evaluation_metrics

    counts = {n: (a.num_truncated, a.num_words_dropped) for n, a in aligned.items()}
    cut = [
        record
        for name in SPLITS
        for record, ids in zip(dataset.split(name), aligned[name].word_ids)
        # As in alignment: missing words are cut only where the encoding is full.
        if _kept(ids) < len(record.tokens) and len(ids) >= max_length
    ]
    if not cut:
        detail = f"every record fits max_length={max_length} subwords"
        report.add("truncation", "ok", detail, counts=counts)
        return
    longest = max(
        len(tokenizer(list(r.tokens), is_split_into_words=True)["input_ids"]) for r in cut
    )
    lines = [f"{n}: {t:,} record(s) truncated, {d:,} word(s) lost" for n, (t, d) in counts.items()]
    # The metrics score the words cut off as missed (AlignedSplit.scored_rows), so the cut
    # caps what any model can score on dev and test.
    for name in ("dev", "test"):
        split = aligned.get(name)
        if split is not None and split.num_truncated:
            perfect = [[dataset.label_map.o_id if y == IGNORE else y for y in row] for row in split.word_labels()]
            ceiling = evaluation_metrics(*split.scored_rows(perfect, dataset.label_map.o_id),
                                         dataset.label_map)["f1"]
            lines.append(f"{name}: a model right on every word it sees scores entity F1 at most {ceiling:.4f}")
    limit = subword_limit(tokenizer, config)
    if limit is not None and longest > limit and max_length >= limit:
        fix = (f"shorten or split the records longer than {limit} subwords, the most this model takes (the "
               f"longest has {longest})")
    elif limit is not None and longest > limit:
        fix = (f"raise --max-length to {limit}, the most this model takes, and shorten or split the records "
               f"longer than that (the longest has {longest} subwords)")
    else:
        fix = f"raise --max-length to {longest} (the longest record's subwords) or shorten the records"
    detail = "\n".join(lines) + f"\nfirst: {cut[0].source}:{cut[0].line}. Fix: {fix}"
    report.add("truncation", "warn", detail, counts=counts, longest=longest, model_limit=limit)


def _kept(word_ids: list[int | None]) -> int:
    present = [w for w in word_ids if w is not None]
    return max(present) + 1 if present else 0


def check_model_labels(path: str, dataset: NerDataset, report: DoctorReport) -> None:
    """The model config's ``id2label`` against the data's label map."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, **load_options(path))
    except (OSError, ValueError) as exc:
        why = unreachable_note(path) or " ".join(str(exc).split())  # the hub's messages run over several lines
        report.add("model labels", "fail", f"cannot read the config of {path!r}: {why}")
        return
    try:
        model_labels = labels_from_config(config, repr(path))
    except ValueError as exc:
        report.add("model labels", "fail", str(exc))
        return
    data_labels = list(dataset.label_map.labels)
    if model_labels == data_labels:
        report.add("model labels", "ok", f"the model's {len(model_labels)} labels match the data's")
        return
    if all(_GENERIC_LABEL.fullmatch(label) for label in model_labels):
        detail = (
            f"the model config has generic labels {model_labels[0]}..{model_labels[-1]} (no NER "
            f"head for these labels): training re-initialises the head for the data's "
            f"{len(data_labels)} labels"
        )
        report.add("model labels", "warn", detail, model_labels=model_labels)
        return
    if sorted(model_labels) == sorted(data_labels):
        # Training puts the head's rows in the data's order (nerkit.model.load_model).
        detail = (f"the model has the data's {len(data_labels)} labels in another order: training keeps each "
                  "label's trained row, reordered to the data's")
        report.add("model labels", "ok", detail, model_labels=model_labels, data_labels=data_labels)
        return
    missing = [x for x in data_labels if x not in model_labels]
    extra = [x for x in model_labels if x not in data_labels]
    # Training works, but on a fresh head: what this model learnt for its labels is dropped.
    detail = (
        f"the model's labels {model_labels} differ from the data's {data_labels} (missing in the model: "
        f"{missing}; only in the model: {extra}): training gives it a fresh head for the data's labels, and "
        "its trained head is not used. Fix, if you meant to go on from that head: use data with the "
        "model's label set; else start from the base model"
    )
    report.add("model labels", "warn", detail, model_labels=model_labels, data_labels=data_labels)


def check_baseline(dataset: NerDataset, dev: AlignedSplit, report: DoctorReport) -> None:
    """State the all-O token accuracy so nobody mistakes it for learning."""
    from nerkit.metrics import evaluation_metrics

    # Scored as training scores a collapsed model (words cut by max_length included), so
    # the figure here is the one a collapsed run reports.
    o_id = dataset.label_map.o_id
    all_o = [[o_id] * len(row) for row in dev.word_labels()]
    acc = evaluation_metrics(*dev.scored_rows(all_o, o_id), dataset.label_map)["token_accuracy"]
    detail = (
        f"predicting 'O' for every token scores {acc:.1%} token accuracy on dev (entity F1 0): "
        f"an 'accuracy {acc:.0%}' is this do-nothing baseline, not learning; judge models by "
        "entity F1"
    )
    report.add("baseline", "ok", detail, all_o_token_accuracy=acc)


def check_metric(dataset: NerDataset, dev: AlignedSplit, report: DoctorReport) -> None:
    """Gold labels scored as predictions through the training loop's metric path: F1 = 1."""
    from nerkit.metrics import decode_counted, evaluation_metrics

    # 1) The gold ids, decoded as the metric path decodes them, equal each counted word's tag.
    gold, _ = decode_counted(dev.labels, dev.labels, dataset.label_map)
    for record, ids, tags in zip(dataset.dev, dev.word_ids, gold):
        expected = [record.tags[w] for w in sorted({w for w in ids if w is not None})]
        if tags != expected:
            detail = (
                f"{record.source}:{record.line}: aligned labels {tags} do not decode back to "
                f"the word tags {expected}"
            )
            report.add("metric sanity", "fail", detail)
            return
    # 2) Scoring gold against itself gives F1 = 1.
    try:
        f1 = evaluation_metrics(dev.labels, dev.labels, dataset.label_map)["f1"]
    except Exception as exc:  # noqa: BLE001 - a broken metric path is what this check reports
        report.add("metric sanity", "fail", f"the metric path raised {type(exc).__name__}: {exc}")
        return
    if f1 == 1.0:
        detail = "gold labels scored as predictions give entity F1 = 1.0"
        report.add("metric sanity", "ok", detail, f1=f1)
    elif not any(r.has_entities for r in dataset.dev):
        detail = (
            f"dev has no entities, so entity F1 is {f1} for any model. "
            "Fix: give a dev split with entities"
        )
        report.add("metric sanity", "fail", detail, f1=f1)
    elif not any(tags != ["O"] * len(tags) for tags in gold):
        detail = (
            f"no dev entity is left after truncation to max_length, so entity F1 is {f1} for any model. "
            "Fix: raise --max-length (see truncation) or shorten the dev records"
        )
        report.add("metric sanity", "fail", detail, f1=f1)
    else:
        detail = (
            f"gold labels scored as predictions give entity F1 = {f1}, expected 1.0: "
            "the alignment or metric path is broken"
        )
        report.add("metric sanity", "fail", detail, f1=f1)


def check_overlap(dataset: NerDataset, report: DoctorReport) -> None:
    """Dev and test records whose words are a train record's: scores on them measure
    memory, not generalisation (a split cut after duplicating, or dev copied from train)."""
    train = {r.tokens for r in dataset.train}
    seen = {name: [r for r in dataset.split(name) if r.tokens in train] for name in ("dev", "test")}
    counts = {name: len(rows) for name, rows in seen.items()}
    if not any(counts.values()):
        report.add("overlap", "ok", "no dev or test record repeats a train record's words", counts=counts)
        return
    lines = [f"{name}: {n:,} of {len(dataset.split(name)):,} record(s) also in train"
             for name, n in counts.items() if n]
    first = next(rows[0] for rows in seen.values() if rows)
    detail = ("\n".join(lines) + f"\nfirst: {first.source}:{first.line}. Fix: remove them from dev/test, "
              "or deduplicate before splitting")
    report.add("overlap", "warn", detail, counts=counts)
