"""Label-smoothed cross-entropy over real target tokens only."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from nmt_cli.tokenizer import PAD_ID


def cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Summed token-level cross-entropy; padding targets contribute exactly nothing.

    With smoothing e over V classes the per-token loss is
    `(1 - e) * -log p(y) + e * mean_v(-log p(v))` (PyTorch's definition).
    Divide by the number of real target tokens to get the per-token loss.

    Args:
        logits: N x V (or B x T x V) unnormalized scores.
        targets: N (or B x T) token ids; PAD_ID positions are ignored.

    Returns:
        a scalar tensor, the summed loss.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
