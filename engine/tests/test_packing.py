"""Packing: records share a row but never attend to each other, so logits and loss equal the unpacked ones."""
from __future__ import annotations

import pytest
import torch

from conftest import TINY

from qlora_engine.data import IGNORE, Sequence, collate
from qlora_engine.errors import BadConfig
from qlora_engine.order import token_loss_sum
from qlora_engine.isolation import verify_packing
from qlora_engine.packing import block_causal_mask, pack


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32, attn_implementation="sdpa")
    return m.eval()


def records():
    g = torch.Generator().manual_seed(3)
    out = []
    for n in (9, 14, 5, 11, 7):
        ids = torch.randint(0, 50000, (n,), generator=g).tolist()
        labels = [IGNORE] * (n // 2) + ids[n // 2:]
        labels[0] = IGNORE
        out.append(Sequence(ids, labels, (n,)))
    return out


def test_pack_is_greedy_and_bounded():
    rows = pack(records(), 24)
    assert [r.lengths for r in rows] == [(9, 14), (5, 11, 7)]
    assert all(len(r) <= 24 for r in rows)
    assert rows[0].input_ids == records()[0].input_ids + records()[1].input_ids


def test_block_causal_mask_shape_and_blocks():
    seg = torch.tensor([[0, 0, 1, 1, -1]])
    allowed = block_causal_mask(seg, torch.float32)[0, 0] == 0
    assert allowed.tolist() == [
        [True, False, False, False, False],
        [True, True, False, False, False],
        [False, False, True, False, False],
        [False, False, True, True, False],
        [False, False, False, False, True],
    ]


@torch.no_grad()
def test_packed_logits_equal_unpacked(model):
    recs = records()
    rows = pack(recs, 24)
    batch = collate(rows, pad_id=0, packed=True)  # row 0 has 23 tokens + 1 pad
    packed = model(**batch.model_inputs(torch.device("cpu"), torch.float32)).logits
    k = 0
    for r, row in enumerate(rows):
        start = 0
        for length in row.lengths:
            alone = model(input_ids=torch.tensor([recs[k].input_ids])).logits[0]
            torch.testing.assert_close(packed[r, start:start + length], alone, atol=1e-4, rtol=1e-4)
            start += length
            k += 1
    # the loss sees the same target tokens, so the summed loss is the same too
    unpacked = sum(token_loss_sum(model(input_ids=torch.tensor([s.input_ids])).logits, torch.tensor([s.labels]))
                   for s in recs)
    assert batch.target_tokens == sum(sum(1 for x in s.labels[1:] if x != IGNORE) for s in recs)
    torch.testing.assert_close(token_loss_sum(packed, batch.labels), unpacked, atol=1e-3, rtol=1e-5)


@torch.no_grad()
def test_without_the_mask_records_would_see_each_other(model):
    """Control: the same packed row with a plain causal mask gives different logits for the second record."""
    recs = records()
    row = pack(recs[:2], 24)[0]
    plain = model(input_ids=torch.tensor([row.input_ids])).logits[0, 9:]
    alone = model(input_ids=torch.tensor([recs[1].input_ids])).logits[0]
    assert (plain - alone).abs().max() > 1e-2


def test_verify_packing_accepts_the_model_and_rejects_a_mask_ignoring_one(model):
    verify_packing(model, 50000, torch.device("cpu"))

    class IgnoresMask(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def get_input_embeddings(self):
            return self.inner.get_input_embeddings()

        def forward(self, input_ids, attention_mask=None, position_ids=None):
            return self.inner(input_ids=input_ids)

    with pytest.raises(BadConfig) as info:
        verify_packing(IgnoresMask(model), 50000, torch.device("cpu"))
    assert info.value.field == "packing"
