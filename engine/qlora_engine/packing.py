"""Packing several records into one row of at most max_length tokens, without records seeing each other.

How it stays exact: each packed row carries
- position_ids that restart at 0 for every record, so rotary embeddings see the same positions as unpacked, and
- a 4D additive attention mask (B, 1, S, S): 0 where query and key are in the same record and key <= query,
  the dtype's minimum elsewhere (block-diagonal causal). Padding is one more block, so no row is all-masked.
transformers passes a 4D mask straight to the attention function in 4.46+ (as an already "inverted" additive
mask) and in 5.x (masking_utils returns a 4D mask as-is); sdpa and eager both add it to the scores. Because a
silently ignored mask would train records on each other, `verify_packing` checks it numerically on the loaded
model before training (packed logits must equal each record's own logits) and refuses packing if not.
"""
from __future__ import annotations

from typing import Any, Callable, List, Tuple

import torch

from .data import Sequence
from .errors import BadConfig


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


def isolation_error(packed: torch.Tensor, leaky: torch.Tensor, records: List[List[int]],
                    alone: Callable[[List[int]], torch.Tensor]) -> Tuple[float, float]:
    """(worst, leak): how far the packed row's outputs are from each record run alone, and how far outputs of the
    same row with records seeing each other are. Packing is exact when worst is a small fraction of leak."""
    start, worst, leak = 0, 0.0, 0.0
    for ids in records:
        own = alone(ids)
        worst = max(worst, (packed[start:start + len(ids)] - own).abs().max().item())
        leak = max(leak, (leaky[start:start + len(ids)] - own).abs().max().item())
        start += len(ids)
    return worst, leak


@torch.no_grad()
def verify_packing(model: Any, vocab_size: int, device: torch.device) -> None:
    """Pack two short random records and compare with running each alone; raise BadConfig if they differ."""
    from .data import collate

    generator = torch.Generator().manual_seed(0)
    lengths = (7, 5)
    records = [Sequence(torch.randint(0, vocab_size, (n,), generator=generator).tolist(), [-100] * n, (n,))
               for n in lengths]
    was_training = model.training
    model.eval()
    try:
        dtype = mask_dtype(model)
        row = pack(records, sum(lengths) + 3)  # + 3 padding tokens, as a real batch may have
        batch = collate(row + [Sequence([0] * (sum(lengths) + 3), [-100] * (sum(lengths) + 3), (sum(lengths) + 3,))],
                        0, packed=True)
        inputs = batch.model_inputs(device, dtype)
        packed = model(**inputs).logits[0].float()
        # The same row with a plain causal mask: what a silently ignored mask would give (records see each other).
        leaky = model(input_ids=inputs["input_ids"][:1]).logits[0].float()
        worst, leak = isolation_error(
            packed, leaky, [r.input_ids for r in records],
            lambda ids: model(input_ids=torch.tensor([ids], device=device)).logits[0].float())
    finally:
        model.train(was_training)
    # Judge the error against what leaking would cost, not an absolute bound: 4-bit kernels with half-precision
    # compute differ between batch shapes by a few percent of the logits, while a leak moves them by far more.
    if not worst <= 0.1 * leak:
        raise BadConfig(
            f"packing is not supported by this transformers version or attention implementation: packed logits "
            f"differ from unpacked by {worst:.3g} (a mask that lets records see each other differs by {leak:.3g}). "
            "Set packing: false.", field="packing")
