"""The numerical check that records sharing a row do not see each other: packed outputs must equal each record run
alone, judged against what a leaking mask would give. Used before training with packing (verify_packing) and for
token batching's varlen attention (passes.verify_passes)."""
from __future__ import annotations

from typing import Any, Callable, List, Tuple

import torch

from .data import collate
from .errors import BadConfig
from .packing import mask_dtype, pack
from .sequence import Sequence


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
