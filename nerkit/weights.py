"""Class weights for the token-classification loss, from the aligned training labels.

One module, one source of truth: ``nerkit train``, every search trial and the trial
tables all call :func:`class_weights` and :func:`entity_o_ratio`.

Counts are taken over exactly the tokens the loss sees: aligned label ids that are
not ``-100`` (special tokens and, by default, continuation subwords are not
counted). The team's printed table (B-FOOD 5.03, I-QTY 772.7) implies a token total
near 8,490 while their counts sum to 7,569 (B-FOOD 4.49, I-QTY 688 with the same
formula): a total that is not the count the loss sees silently rescales every
entity weight against ``O``.

Strategies (each gives a base weight per label; then ``O`` is multiplied by
``o_weight``, every entity label by ``entity_boost``, and ``max_weight`` caps the
result):

* ``seed`` — the team's recipe: base 1 for ``O``; ``total / (num_labels * count)``
  for each entity label.
* ``inverse`` — ``(total / (num_labels * count)) ** smoothing`` for every label,
  ``O`` included (1 = inverse frequency, 0.5 = square root, 0 = uniform).
* ``effective`` — Cui et al. 2019, "Class-Balanced Loss Based on Effective Number
  of Samples" (arXiv:1901.05555): ``(1 - beta) / (1 - beta ** count)``, normalised
  so the weights of the labels seen in training sum to their number (``num_labels``
  when all are seen).
* ``none`` — base 1 for every label.

Scale does not matter, only ratios: the loss is a *weighted mean*
(``sum(w_y * l) / sum(w_y)``), so multiplying every weight by one constant leaves
the loss, its gradients and therefore training unchanged (and Adam is invariant to
gradient scale anyway). :func:`entity_o_ratio` reports the one number that does
matter — the token-weighted mean entity weight over the ``O`` weight — with every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

STRATEGIES = ("seed", "inverse", "effective", "none")
IGNORE = -100


def count_labels(label_rows: Iterable[Sequence[int]], num_labels: int) -> list[int]:
    """Count each label id over the tokens the loss sees (ids other than -100)."""
    counts = [0] * num_labels
    for row in label_rows:
        for label_id in row:
            if label_id != IGNORE:
                counts[label_id] += 1
    return counts


def _base_weights(counts: Sequence[int], strategy: str, smoothing: float, beta: float) -> list[float]:
    total = sum(counts)
    k = len(counts)
    # A label absent from training is never a target; count it as 1 to keep the formulas
    # finite (class_weights then gives it the mean entity weight).
    safe = [max(c, 1) for c in counts]
    if strategy == "seed":
        return [1.0] + [total / (k * c) for c in safe[1:]]
    if strategy == "inverse":
        return [(total / (k * c)) ** smoothing for c in safe]
    if strategy == "effective":
        raw = [(1.0 - beta) / (1.0 - beta**c) for c in safe]
        # Normalised over the labels seen only: an absent label's stand-in count of 1 gave
        # it the largest raw weight, so the scale (which max_weight caps) moved with which
        # labels happened to be absent.
        seen = [i for i, c in enumerate(counts) if c > 0] or list(range(k))
        scale = len(seen) / sum(raw[i] for i in seen)
        return [w * scale for w in raw]
    return [1.0] * k


def class_weights(
    counts: Sequence[int],
    strategy: str = "seed",
    o_weight: float = 1.0,
    entity_boost: float = 1.0,
    smoothing: float = 1.0,
    beta: float = 0.999,
    max_weight: float | None = None,
    target_ratio: float | None = None,
) -> list[float]:
    """Per-label loss weights, index-aligned with the label map (``O`` at index 0).

    Args:
        counts: Counted tokens per label id (see :func:`count_labels`).
        strategy: One of ``seed``, ``inverse``, ``effective``, ``none``.
        o_weight: Multiplier on the ``O`` weight (the team used 0.5).
        entity_boost: Multiplier on every entity weight (the team used 3.0).
        smoothing: Exponent for ``inverse`` (1 = inverse frequency, 0.5 = sqrt, 0 = none).
        beta: ``effective`` strategy's beta in [0, 1).
        max_weight: Optional cap on any weight.
        target_ratio: Set the effective entity:O ratio (:func:`entity_o_ratio`)
            directly instead of through ``o_weight`` and ``entity_boost`` (which must
            then stay 1): the entity weights are scaled so the ratio equals it. The
            one scale-free knob the two multipliers redundantly encode.

    Returns:
        One float per label.

    Raises:
        ValueError: on an unknown strategy or an out-of-range value.

    Example:
        >>> counts = [5130, 460, 672, 194, 293, 207, 343, 106, 3, 77, 84]
        >>> w = class_weights(counts, "seed", o_weight=0.5, entity_boost=3.0)
        >>> round(w[1], 2), round(w[8], 1)
        (4.49, 688.1)
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"weight strategy is {strategy!r}, but must be one of {list(STRATEGIES)}")
    if len(counts) < 2:
        raise ValueError(f"class weights need O plus at least one entity label; got {len(counts)} label(s)")
    if sum(counts) <= 0:
        raise ValueError("class weights need at least one counted training token; got none")
    for name, value in (("o_weight", o_weight), ("entity_boost", entity_boost)):
        if not value > 0:
            raise ValueError(f"{name} is {value}, but must be > 0")
    if not 0.0 <= smoothing <= 2.0:
        raise ValueError(f"smoothing is {smoothing}, but must be in [0, 2]")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta is {beta}, but must be in [0, 1)")
    if max_weight is not None and not max_weight > 0:
        raise ValueError(f"max_weight is {max_weight}, but must be > 0 or unset")
    if max_weight is not None and target_ratio is not None:
        # The cap would move the ratio the caller asked for (2.0 asked, 1.55 trained).
        raise ValueError(f"max_weight={max_weight} and target_ratio={target_ratio} cannot be combined: "
                         "the cap changes the entity:O ratio; use one of them")

    weights = _base_weights(counts, strategy, smoothing, beta)
    if target_ratio is not None:
        if not target_ratio > 0:
            raise ValueError(f"target_ratio is {target_ratio}, but must be > 0")
        if o_weight != 1.0 or entity_boost != 1.0:
            raise ValueError(
                f"target_ratio={target_ratio} replaces o_weight and entity_boost, but they are "
                f"{o_weight} and {entity_boost}; leave them at 1.0"
            )
        current = entity_o_ratio(weights, counts)
        if current == current:  # no entity tokens: nothing to scale (NaN)
            entity_boost = target_ratio / current
    weights[0] *= o_weight
    weights[1:] = [w * entity_boost for w in weights[1:]]
    if max_weight is not None:
        weights = [min(w, max_weight) for w in weights]
    # A label absent from training is never a training target, but dev and test losses
    # see it: give it the mean entity weight, not the largest weight of all (from count 1).
    entity_tokens = sum(counts[1:])
    if entity_tokens:
        mean_entity = sum(w * c for w, c in zip(weights[1:], counts[1:])) / entity_tokens
        weights[1:] = [w if c else mean_entity for w, c in zip(weights[1:], counts[1:])]
    return weights


def config_weights(config, counts: Sequence[int]) -> list[float]:
    """The class weights a run of ``config`` (a :class:`nerkit.config.TrainConfig`) trains
    with on a train split of ``counts``: the one mapping from its weight settings, shared by
    training and by what records a trained model's weights (tune.promote's manifest)."""
    return class_weights(
        counts, config.weight_strategy, o_weight=config.o_weight, entity_boost=config.entity_boost,
        smoothing=config.smoothing, beta=config.beta, max_weight=config.max_weight,
        target_ratio=config.entity_o_ratio,
    )


def entity_o_ratio(weights: Sequence[float], counts: Sequence[int]) -> float:
    """Token-weighted mean entity weight divided by the ``O`` weight.

    The only quantity the weights change (their scale cancels in the weighted mean):
    how much one average entity token counts against one ``O`` token.
    """
    entity_tokens = sum(counts[1:])
    if entity_tokens == 0:
        return float("nan")
    mean_entity = sum(w * c for w, c in zip(weights[1:], counts[1:])) / entity_tokens
    return mean_entity / weights[0]
