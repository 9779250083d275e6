"""Token-classification losses: weighted cross-entropy and focal loss.

Both ignore ``-100`` targets and reduce the same way, a weighted mean over the
counted tokens: ``sum_i w_{y_i} * l_i / sum_i w_{y_i}`` (PyTorch's
``CrossEntropyLoss(weight=...)`` convention). A batch with no counted token gives
0, not NaN.

Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection",
arXiv:1708.02002): ``l_i = -(1 - p_t) ** gamma * log p_t`` with per-class alpha =
the class weights. ``p_t`` comes from the *unweighted* log-softmax, so the weights
only scale tokens and never distort the probabilities that modulate them. With
``gamma = 0`` it is exactly weighted cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    gamma: float = 0.0,
) -> torch.Tensor:
    """Weighted-mean cross-entropy (``gamma == 0``) or focal loss (``gamma > 0``).

    Args:
        logits: ``(..., num_labels)`` unnormalised scores.
        labels: ``(...)`` label ids, ``-100`` where a token is not counted.
        weights: ``(num_labels,)`` class weights; ``None`` means all ones.
        gamma: Focal exponent, ``>= 0``.

    Returns:
        A scalar tensor.
    """
    if gamma < 0:
        raise ValueError(f"focal gamma is {gamma}, but must be >= 0")
    num_labels = logits.shape[-1]
    logits = logits.reshape(-1, num_labels).float()
    labels = labels.reshape(-1)
    mask = labels != IGNORE
    if not bool(mask.any()):
        # Keep the graph connected so backward() works on an all-ignored batch.
        return logits.sum() * 0.0
    logits = logits[mask]
    targets = labels[mask]
    log_p_t = F.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)
    per_token = -log_p_t
    if gamma > 0:
        # Floor 1 - p_t at the smallest normal float: for 0 < gamma < 1 (the search samples
        # gamma from 0.5) d/dx x**gamma is inf at x = 0, so once one token's p_t rounded to 1.0
        # in fp32 (a logit ~17 ahead, e.g. a model already fine-tuned with CE) backward gave
        # 0 * inf = NaN for the whole batch although the loss was finite. Below the floor the
        # clamp passes no gradient, and such a token's term is at most -log p_t <= 6e-8.
        one_minus_p = (1.0 - log_p_t.exp()).clamp(min=torch.finfo(log_p_t.dtype).tiny)
        per_token = per_token * one_minus_p.pow(gamma)
    if weights is None:
        return per_token.mean()
    w = weights.to(device=logits.device, dtype=per_token.dtype)[targets]
    return (w * per_token).sum() / w.sum()
