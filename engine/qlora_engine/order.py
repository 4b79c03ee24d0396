"""Data order and the token-weighted loss: the two places where exact resume and correct accumulation live."""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

from .data import IGNORE


def steps_for_epochs(epochs: int, rows: int, micro_batch_size: int, accumulation: int) -> int:
    """Optimizer steps that make `epochs` passes over `rows` training rows (a step takes micro_batch_size x
    accumulation rows; the last step of a pass takes its first rows from the next pass's order)."""
    return epochs * -(-rows // (micro_batch_size * accumulation))


class DataOrder:
    """Which rows form the next micro-batch.

    Each epoch is one permutation from a torch.Generator seeded with seed + epoch, cut into micro-batches (the
    last one may be smaller). The position (epoch, index of the next micro-batch) is all a checkpoint needs to
    continue with exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, rows: int, batch_size: int, seed: int, epoch: int = 0, index: int = 0) -> None:
        if rows < 1:
            raise ValueError("no training rows")
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.epoch, self.index = epoch, index
        self._permutation: List[int] = []
        self._permutation_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.rows // self.batch_size)

    @property
    def epochs(self) -> float:
        """Epochs completed, fractional (for progress reports)."""
        return self.epoch + self.index / self.batches_per_epoch

    def _order(self) -> List[int]:
        if self._permutation_epoch != self.epoch:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            self._permutation = torch.randperm(self.rows, generator=generator).tolist()
            self._permutation_epoch = self.epoch
        return self._permutation

    def next(self) -> List[int]:
        if self.index >= self.batches_per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        start = self.index * self.batch_size
        rows = self._order()[start:start + self.batch_size]
        self.index += 1
        return rows


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum (not mean) of next-token cross-entropies over target tokens, in fp32.

    The caller divides by the number of target tokens in the whole optimizer step, so a token weighs the same
    whichever micro-batch it is in (a mean per micro-batch would overweight short batches). Labels are shifted
    instead of logits: the logits stay one contiguous tensor (no vocab-sized copy).
    """
    targets = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE)], dim=1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
