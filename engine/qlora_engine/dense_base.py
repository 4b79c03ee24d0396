"""The 4-bit base weights dequantized once, when the GPU has room (`train.dense_base`).

bitsandbytes computes a 4-bit linear by dequantizing its NF4 weight to the compute dtype and multiplying; in
training it does so twice per pass (forward, and backward for the input gradient), for every linear of every layer:
on an H200 with Phi-2 shapes, 6 ms of a 72 ms tutorial step and 3,000 of its kernels (bench/profile_step.py,
docs/performance.md). With dense_base each 4-bit linear is dequantized once after loading and replaced by a
`DenseLinear` holding the result, with Linear4bit.forward's casts: every product sees the same weight values as
bitsandbytes' would, so the loss and the gradients are QLoRA's (the adapter is trained against the NF4-rounded
base, and used with it). The cost is memory: the compute dtype's bytes per base weight in place of ~0.53
(Phi-2: 5.2 GB instead of 1.4 GB), which is why "auto" wants the plan with it to take at most half the GPU's
free memory (plan.pick).
"""
from __future__ import annotations

import gc
from typing import Any, List, Optional

import torch


class DenseLinear(torch.nn.Module):
    """A frozen linear layer over a dequantized 4-bit weight (buffers: nothing here is trained or saved)."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense_linear(x, self.weight, self.bias)


def dense_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Linear4bit.forward on a dequantized weight: input and bias in the compute dtype, the output back in the
    input's dtype."""
    return torch.nn.functional.linear(x.to(weight.dtype), weight, bias).to(x.dtype)


def dequantized(linear: Any) -> torch.Tensor:
    """A 4-bit linear's weight in its compute dtype: the values bitsandbytes multiplies with."""
    import bitsandbytes.functional as bnbf
    dtype = linear.compute_dtype or linear.weight.quant_state.dtype
    return bnbf.dequantize_4bit(linear.weight.data, linear.weight.quant_state).to(dtype)


def modules_4bit(model: Any) -> List[torch.nn.Module]:
    """The model's bitsandbytes 4-bit linears (none without bitsandbytes)."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def linears_4bit(model: Any) -> int:
    """How many bitsandbytes 4-bit linears the model has."""
    return len(modules_4bit(model))


def dequantize_base(model: Any) -> int:
    """Replace every 4-bit linear of the (PEFT-wrapped) model by its DenseLinear, in place; the 4-bit weights are
    freed. Returns how many were replaced."""
    targets = set(modules_4bit(model))
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if child not in targets:
                continue
            weight = dequantized(child)
            bias = None if child.bias is None else child.bias.data.to(weight.dtype)
            setattr(module, name, DenseLinear(weight, bias))
            replaced += 1
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return replaced
