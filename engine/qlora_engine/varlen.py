"""Variable-length attention: many records in one row, each attending only to itself, with no mask tensor.

A forward pass over several records concatenated into one row of T tokens passes `cu_seq_lens_q/k` (the records'
cumulative start offsets, int32, shape (n + 1,)) and `max_length_q/k` through the model's keyword arguments, which
transformers hands to the attention function. Registered as the attention implementation `qlora_varlen`:
- CUDA with fp16/bf16: PyTorch's flash-attention varlen kernel (`aten::_flash_attention_forward` with cu_seqlens,
  the op behind SDPA on nested tensors; it has a backward). Cost is linear in the records' own lengths, not T².
- anything else (CPU, fp32 such as an fp32-upcast stream, pre-Ampere GPUs): causal SDPA per record. Exact,
  slower (one host sync per layer for the record bounds); what the CPU tests and the CPU engine use.
No mask is ever built: transformers creates none for an implementation it has no mask function for. The
implementation is switched on only around the training forward (`attention(model)`); generation keeps sdpa.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

NAME = "qlora_varlen"
_registered = False


def flash_available(query: torch.Tensor) -> bool:
    """PyTorch's flash kernels: Ampere (sm80) or newer, fp16/bf16, head dim a multiple of 8 up to 256."""
    return (query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and query.shape[-1] <= 256
            and query.shape[-1] % 8 == 0 and torch.cuda.get_device_capability(query.device)[0] >= 8)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int,
           scale: Optional[float]) -> torch.Tensor:
    """(T, H, D) queries/keys/values of concatenated records -> (T, H, D), causal within each record."""
    if k.shape[1] != q.shape[1]:  # grouped-query attention: one K/V head serves several query heads
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    if flash_available(q):
        return torch.ops.aten._flash_attention_forward(
            q.contiguous(), k.contiguous(), v.contiguous(), cu, cu, max_len, max_len, 0.0, True, False,
            scale=scale)[0]
    bounds = cu.tolist()  # a host sync; only on the per-record fallback
    parts = []
    for start, end in zip(bounds, bounds[1:]):
        if end == start:  # an empty record (pad_to_bucket's slots)
            continue
        qs, ks, vs = (x[start:end].transpose(0, 1) for x in (q, k, v))  # (H, n, D)
        parts.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale).transpose(0, 1))
    return torch.cat(parts, dim=0)


def varlen_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: Optional[torch.Tensor], scaling: Optional[float] = None, dropout: float = 0.0,
                     **kwargs: Any) -> Tuple[torch.Tensor, None]:
    """transformers' attention-function signature: (1, H, T, D) in, (1, T, H, D) out."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[0] != 1:
        raise RuntimeError(f"{NAME} attention needs one packed row and cu_seq_lens_q; use sdpa otherwise")
    if dropout:
        raise RuntimeError(f"{NAME} attention does not implement attention dropout")
    out = attend(query[0].transpose(0, 1), key[0].transpose(0, 1), value[0].transpose(0, 1), cu,
                 int(kwargs["max_length_q"]), scaling)
    return out.unsqueeze(0), None


def register() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        AttentionInterface.register(NAME, varlen_attention)
        _registered = True


@contextlib.contextmanager
def attention(model: Any) -> Iterator[None]:
    """Use varlen attention for the forward passes inside the block (the model's own implementation after)."""
    register()
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
