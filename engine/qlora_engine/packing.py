"""Packing several records into one row of at most max_length tokens, without records seeing each other.

How it stays exact: each packed row carries
- position_ids that restart at 0 for every record, so rotary embeddings see the same positions as unpacked, and
- a 4D additive attention mask (B, 1, S, S): 0 where query and key are in the same record and key <= query,
  the dtype's minimum elsewhere (block-diagonal causal). Padding is one more block, so no row is all-masked.
transformers passes a 4D mask straight to the attention function in 4.46+ (as an already "inverted" additive
mask) and in 5.x (masking_utils returns a 4D mask as-is); sdpa and eager both add it to the scores. Because a
silently ignored mask would train records on each other, isolation.verify_packing checks it numerically on the
loaded model before training (packed logits must equal each record's own logits) and refuses packing if not.
"""
from __future__ import annotations

from typing import Any, List

import torch

from .sequence import Sequence


def pack(rows: List[Sequence], max_length: int) -> List[Sequence]:
    """Greedy next-fit in data order: append a record to the open row while it fits, else start a new row."""
    packed: List[Sequence] = []
    current: Sequence | None = None
    for row in rows:
        if current is not None and len(current) + len(row) <= max_length:
            current.input_ids.extend(row.input_ids)
            current.labels.extend(row.labels)
            current.lengths = current.lengths + row.lengths
            continue
        current = Sequence(list(row.input_ids), list(row.labels), tuple(row.lengths))
        packed.append(current)
    return packed


def block_causal_mask(segment_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, S) segment ids -> (B, 1, S, S) additive mask: attend within a segment, causally."""
    width = segment_ids.shape[1]
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool, device=segment_ids.device).tril()
    allowed = (same & causal)[:, None, :, :]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def mask_dtype(model: Any) -> torch.dtype:
    """The dtype of the hidden states, which the additive mask is added to (fp32 after k-bit preparation)."""
    return model.get_input_embeddings().weight.dtype
