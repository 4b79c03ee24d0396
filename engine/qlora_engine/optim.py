"""Optimizer and learning-rate schedule.

The schedules are transformers' (get_linear/cosine/constant_schedule_with_warmup) written as a LambdaLR over
the optimizer step, so a run here and a Trainer run with the same settings see the same learning rates, and
the scheduler's state_dict round-trips through a checkpoint (a plain function is not pickled, only its state).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from .config import TrainConfig
from .errors import BadConfig


def lr_factor(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at scheduler step s (0 for the first update when warmup > 0)."""
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))  # cosine, half a period
    return factor


def build_optimizer(params: Iterable[torch.nn.Parameter], train: TrainConfig) -> torch.optim.Optimizer:
    params = list(params)
    if train.optimizer == "adamw_torch":
        return torch.optim.AdamW(params, lr=train.learning_rate, weight_decay=train.weight_decay)
    if train.optimizer == "paged_adamw_8bit":
        if not torch.cuda.is_available():
            raise BadConfig("train.optimizer paged_adamw_8bit needs an NVIDIA GPU with CUDA; use adamw_torch on "
                            "CPU.", field="train.optimizer")
        import bitsandbytes as bnb
        return bnb.optim.PagedAdamW8bit(params, lr=train.learning_rate, weight_decay=train.weight_decay)
    raise BadConfig(f"unknown optimizer {train.optimizer!r}", field="train.optimizer")


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(train.lr_scheduler, train.warmup_steps, train.max_steps))
