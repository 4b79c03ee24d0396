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
    if train.optimizer == "adamw_torch_fused":
        # One multi-tensor kernel for all adapter tensors (CUDA); elsewhere the plain implementation.
        fused = bool(params) and all(p.is_cuda for p in params)
        return torch.optim.AdamW(params, lr=train.learning_rate, weight_decay=train.weight_decay, fused=fused)
    if train.optimizer == "paged_adamw_8bit":
        if not torch.cuda.is_available():
            raise BadConfig("train.optimizer paged_adamw_8bit needs an NVIDIA GPU with CUDA; use adamw_torch on "
                            "CPU.", field="train.optimizer")
        import bitsandbytes as bnb
        return bnb.optim.PagedAdamW8bit(params, lr=train.learning_rate, weight_decay=train.weight_decay)
    raise BadConfig(f"unknown optimizer {train.optimizer!r}", field="train.optimizer")


def step_skipping_non_finite(optimizer: torch.optim.Optimizer, grad_norm: torch.Tensor) -> bool:
    """Step the fused AdamW so that it skips the update on the device when grad_norm is not finite (the mechanism
    torch.amp.GradScaler uses: `found_inf` makes the fused kernel leave weights, moments and step count as they
    were), so no host sync is needed. Returns False, doing nothing, for optimizers that cannot: the caller checks
    the norm on the host then."""
    fused = isinstance(optimizer, torch.optim.AdamW) and all(g.get("fused") for g in optimizer.param_groups)
    if not fused:
        return False
    optimizer.grad_scale = None  # type: ignore[attr-defined]
    optimizer.found_inf = (~torch.isfinite(grad_norm)).float()  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf, optimizer.grad_scale  # type: ignore[attr-defined]
    return True


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(train.lr_scheduler, train.warmup_steps, train.max_steps))
