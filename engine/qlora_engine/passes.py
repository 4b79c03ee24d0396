"""A step's records in as few forward passes as a token budget allows, and the loss on trained positions only.

The optimizer step is defined by its records (DataOrder's rows: micro_batch_size x gradient_accumulation, packed
or not) and by the token-weighted loss over them; how many forward passes compute it is an execution detail. Here
every record of the step is cut out of its row (a packed row is several records already) and the records are
concatenated, in order, into passes of at most `budget` tokens: one row each, no padding, varlen attention
(varlen.py) keeping records apart, position ids restarting at 0 per record. The sum of the passes' token losses
divided by the step's target count is the same number as the straightforward path computes (order.py's
token_loss_sum over padded micro-batches), up to floating-point order; tests/test_passes.py checks loss and
gradients against it.

The loss never materializes full-vocabulary logits for every position: the final hidden states are gathered at the
positions that have a target (the response only, with loss_on: response), and lm_head + cross-entropy run in
chunks of `loss_chunk` positions, each recomputed in backward (torch.utils.checkpoint), so at most one chunk's
fp32 logits are alive at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Sequence as Seq, Tuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .sequence import IGNORE, Sequence
from .model import base_model
from .isolation import isolation_error
from . import varlen


@dataclass
class Pass:
    """One forward pass: records concatenated into one row (host tensors; `to` moves them)."""
    input_ids: torch.Tensor  # (1, T)
    position_ids: torch.Tensor  # (1, T), restarting at 0 for every record
    cu_seqlens: torch.Tensor  # (n + 1,) int32 record offsets
    max_len: int  # the longest record
    positions: torch.Tensor  # (P,) positions whose next token is a target
    targets: torch.Tensor  # (P,) those targets
    records: int

    @property
    def tokens(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def shape(self) -> Tuple[int, int, int]:
        """What a CUDA graph of this pass depends on: tokens, cu_seqlens entries, trained positions."""
        return self.tokens, int(self.cu_seqlens.numel()), int(self.positions.numel())

    def tensors(self) -> Tuple[torch.Tensor, ...]:
        return self.input_ids, self.position_ids, self.cu_seqlens, self.positions, self.targets

    def to(self, device: torch.device) -> "Pass":
        if device.type != "cuda":
            return self
        move = lambda t: t.pin_memory().to(device, non_blocking=True)  # noqa: E731
        return Pass(move(self.input_ids), move(self.position_ids), move(self.cu_seqlens), self.max_len,
                    move(self.positions), move(self.targets), self.records)


def records_of(rows: Iterable[Sequence]) -> List[Tuple[List[int], List[int]]]:
    """(input_ids, labels) of every record in the rows, in order (a packed row holds several)."""
    out = []
    for row in rows:
        start = 0
        for length in row.lengths:
            out.append((row.input_ids[start:start + length], row.labels[start:start + length]))
            start += length
    return out


def _next_fit(lengths: Iterable[int], budget: int) -> List[int]:
    """How many consecutive records each pass takes: a pass takes records while their total stays within `budget`
    tokens (a record longer than the budget gets a pass of its own)."""
    sizes: List[int] = []
    total = 0
    for length in lengths:
        if not sizes or total + length > budget:
            sizes.append(0)
            total = 0
        sizes[-1] += 1
        total += length
    return sizes


def plan_passes(rows: Seq[Sequence], budget: int) -> List[Pass]:
    """The rows' records, in order, in passes of at most `budget` tokens (_next_fit)."""
    records = records_of(rows)
    passes, start = [], 0
    for size in _next_fit((len(ids) for ids, _ in records), budget):
        passes.append(_build(records[start:start + size]))
        start += size
    return passes


def count_passes(rows: Seq[Sequence], budget: int) -> int:
    """len(plan_passes(rows, budget)), from the records' lengths alone."""
    return len(_next_fit((length for row in rows for length in row.lengths), budget))


def empty_pass() -> Pass:
    """A pass of one token and no targets: its loss is 0 and its gradients are zeros, but it runs every layer forward
    and backward (what a rank with fewer passes runs when the ranks must stay in lockstep: distributed.Group.passes)."""
    return _build([([0], [IGNORE])])


def _build(group: List[Tuple[List[int], List[int]]]) -> Pass:
    ids: List[int] = []
    cu = [0]
    pos_ids: List[int] = []
    trained: List[int] = []
    targets: List[int] = []
    for record_ids, labels in group:
        base = len(ids)
        ids.extend(record_ids)
        pos_ids.extend(range(len(record_ids)))
        # The logits at t predict token t + 1 of the same record (labels[0] is always IGNORE).
        for t in range(len(labels) - 1):
            if labels[t + 1] != IGNORE:
                trained.append(base + t)
                targets.append(labels[t + 1])
        cu.append(len(ids))
    return Pass(input_ids=torch.tensor([ids]), position_ids=torch.tensor([pos_ids]),
                cu_seqlens=torch.tensor(cu, dtype=torch.int32), max_len=max(len(r) for r, _ in group),
                positions=torch.tensor(trained, dtype=torch.long), targets=torch.tensor(targets, dtype=torch.long),
                records=len(group))


BUCKETS = 8  # padded sizes per doubling (a power of two): at most 1/BUCKETS filler, and as many graphs to record


def bucket(n: int) -> int:
    """n rounded up to a multiple of 1/BUCKETS of its power of two, and of 64."""
    step = max(64, 1 << max(0, n.bit_length() - BUCKETS.bit_length()))
    return -(-n // step) * step


SLOTS = 8  # cu_seqlens is padded to a multiple of this many entries


def pad_to_bucket(batch: Pass) -> Pass:
    """The same records and targets in a shape shared by many passes, as a CUDA graph needs (one is recorded per
    shape): a filler record of token 0 (positions from 0, no targets; varlen attention keeps it apart) brings the
    tokens up to bucket(tokens); empty records bring cu_seqlens to a multiple of SLOTS entries; the trained positions
    are padded to bucket(P) (or the padded length when nearly all are trained) with IGNORE targets (cross-entropy
    skips them); max_len becomes the padded length (the attention kernel needs only an upper bound)."""
    real = batch.tokens
    total = bucket(real)
    fill = total - real
    cu = batch.cu_seqlens.tolist() + ([total] if fill else [])
    cu += [total] * (-len(cu) % SLOTS)
    trained = int(batch.positions.numel())
    # Nearly every position trained (loss on all tokens): pad to the pass's own length, so the two never split a
    # token count into two shapes.
    extra = (total if trained * BUCKETS > total * (BUCKETS - 1) else bucket(max(trained, 1))) - trained
    return Pass(input_ids=torch.cat([batch.input_ids, batch.input_ids.new_zeros((1, fill))], dim=1),
                position_ids=torch.cat([batch.position_ids, torch.arange(fill).unsqueeze(0)], dim=1),
                cu_seqlens=torch.tensor(cu, dtype=torch.int32), max_len=total,
                positions=torch.cat([batch.positions, batch.positions.new_zeros(extra)]),
                targets=torch.cat([batch.targets, batch.targets.new_full((extra,), IGNORE)]), records=batch.records)


def step_targets(passes: Seq[Pass]) -> int:
    return sum(int(p.targets.numel()) for p in passes)


def rows_targets(rows: Seq[Sequence]) -> int:
    """step_targets of the passes these rows would make, without making them (each record's tokens after its
    first that carry a label)."""
    return sum(sum(1 for label in labels[1:] if label != IGNORE) for _, labels in records_of(rows))


def decoder_and_head(model: Any) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body (embeddings .. final norm) and lm_head of a (PEFT-wrapped) causal LM."""
    base = base_model(model)
    return base.get_decoder(), base.get_output_embeddings()


def _chunk_loss(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum", ignore_index=IGNORE)


def trained_loss_sum(head: torch.nn.Module, hidden: torch.Tensor, positions: torch.Tensor, targets: torch.Tensor,
                     chunk: int) -> torch.Tensor:
    """Sum of next-token cross-entropies at `positions` of hidden (T, h), in fp32, chunk positions at a time."""
    picked = hidden.index_select(0, positions)
    if chunk <= 0 or picked.shape[0] <= chunk:
        return _chunk_loss(head, picked, targets)
    total = picked.new_zeros((), dtype=torch.float32)
    for start in range(0, picked.shape[0], chunk):
        part, want = picked[start:start + chunk], targets[start:start + chunk]
        if torch.is_grad_enabled():
            # No RNG in lm_head + cross-entropy: nothing to preserve (and no RNG-state call inside a CUDA graph).
            total = total + checkpoint(_chunk_loss, head, part, want, use_reentrant=False, preserve_rng_state=False)
        else:
            total = total + _chunk_loss(head, part, want)
    return total


def pass_loss_sum(model: Any, batch: Pass, *, loss_chunk: int) -> torch.Tensor:
    """The summed token loss of one pass (call inside varlen.attention(model))."""
    decoder, head = decoder_and_head(model)
    cu = batch.cu_seqlens
    out = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
                  cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=batch.max_len, max_length_k=batch.max_len)
    if batch.positions.numel() == 0:
        return out.last_hidden_state.sum() * 0.0  # keeps the graph (and DDP-style hooks) uniform
    return trained_loss_sum(head, out.last_hidden_state[0], batch.positions, batch.targets, loss_chunk)


@torch.no_grad()
def verify_passes(model: Any, vocab_size: int, device: torch.device, padded: bool = False) -> None:
    """Run two short random records as one varlen pass and each alone (the model's own attention); raise
    BadConfig when the packed hidden states differ by more than a tenth of what leaking between them would cost.
    Checks whichever varlen backend this device uses (flash kernel or per-record fallback); with padded, the
    pass as pad_to_bucket shapes it for CUDA graphs (filler and empty records)."""
    from .errors import BadConfig

    generator = torch.Generator().manual_seed(0)
    records = [torch.randint(0, vocab_size, (n,), generator=generator).tolist() for n in (7, 5)]
    rows = [Sequence(r, [IGNORE] * len(r), (len(r),)) for r in records]
    batch = plan_passes(rows, budget=64)[0]
    real = batch.tokens
    batch = (pad_to_bucket(batch) if padded else batch).to(device)
    decoder, _ = decoder_and_head(model)
    was_training = model.training
    model.eval()
    try:
        with varlen.attention(model):
            cu = batch.cu_seqlens
            packed = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
                             cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=batch.max_len,
                             max_length_k=batch.max_len).last_hidden_state[0, :real].float()
        leaky = decoder(input_ids=batch.input_ids[:, :real], use_cache=False).last_hidden_state[0].float()
        worst, leak = isolation_error(
            packed, leaky, records,
            lambda ids: decoder(input_ids=torch.tensor([ids], device=device), use_cache=False).last_hidden_state[0].float())
    finally:
        model.train(was_training)
    if not worst <= 0.1 * leak:
        raise BadConfig(f"variable-length attention is not exact on this device: packed hidden states differ from "
                        f"unpacked by {worst:.3g} (records that see each other differ by {leak:.3g}). Set "
                        "train.token_batching: false.", field="train.token_batching")
