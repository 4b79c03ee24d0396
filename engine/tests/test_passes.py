"""Token batching (passes.py + varlen.py) computes the same step as the straightforward path: one padded forward
pass per micro-batch, full logits, token_loss_sum. Same loss (1e-3 relative) and LoRA gradients (cosine >= 0.999)
for packed and unpacked rows, loss on the response and on all tokens, chunked loss, and checkpointing."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY

from qlora_engine.data import IGNORE, Sequence, collate
from qlora_engine.order import token_loss_sum
from qlora_engine.packing import mask_dtype, pack
from qlora_engine.passes import (SLOTS, bucket, pad_to_bucket, pass_loss_sum, plan_passes, records_of, step_targets,
                                 verify_passes)
from qlora_engine import varlen


def lora_model(checkpointing: bool = False):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32, attn_implementation="sdpa")
    for p in base.parameters():
        p.requires_grad_(False)
    if checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                            target_modules=["q_proj", "k_proj", "v_proj", "dense", "fc1"]))
    with torch.no_grad():  # LoRA B starts at zero: give it values so A's gradients are not all zero either
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model.train()


def rows(loss_on: str, packed: bool):
    g = torch.Generator().manual_seed(5)
    out = []
    for n in (23, 41, 9, 30, 17, 36, 12, 27):
        ids = torch.randint(0, 50000, (n,), generator=g).tolist()
        labels = list(ids) if loss_on == "all" else [IGNORE] * (n * 2 // 3) + ids[n * 2 // 3:]
        labels[0] = IGNORE
        out.append(Sequence(ids, labels, (n,)))
    return pack(out, 80) if packed else out


def grads(model):
    return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if p.requires_grad])


def straightforward(model, step_rows, micro_batch_size, packed):
    model.zero_grad(set_to_none=True)
    batches = [collate(step_rows[i:i + micro_batch_size], 0, packed=packed)
               for i in range(0, len(step_rows), micro_batch_size)]
    targets = sum(b.target_tokens for b in batches)
    total = 0.0
    for b in batches:
        loss = token_loss_sum(model(**b.model_inputs(torch.device("cpu"), mask_dtype(model))).logits, b.labels) / targets
        loss.backward()
        total += loss.item()
    return total, grads(model)


def batched(model, step_rows, budget, chunk, padded=False):
    model.zero_grad(set_to_none=True)
    passes = plan_passes(step_rows, budget)
    targets = step_targets(passes)  # of the real passes: the filler has none
    passes = [pad_to_bucket(p) for p in passes] if padded else passes
    total = 0.0
    with varlen.attention(model):
        for p in passes:
            loss = pass_loss_sum(model, p, loss_chunk=chunk) / targets
            loss.backward()
            total += loss.item()
    return total, grads(model), len(passes)


@pytest.fixture(scope="module")
def model():
    return lora_model()


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("loss_on", ["response", "all"])
@pytest.mark.parametrize("budget,chunk", [(4096, 0), (64, 16)])
def test_token_batching_equals_micro_batches(model, packed, loss_on, budget, chunk):
    step_rows = rows(loss_on, packed)
    ref_loss, ref_grad = straightforward(model, step_rows, 2, packed)
    loss, grad, n_passes = batched(model, step_rows, budget, chunk)
    assert n_passes == (1 if budget == 4096 else 4)
    assert math.isfinite(ref_loss) and ref_loss > 1.0
    assert loss == pytest.approx(ref_loss, rel=1e-3)
    cosine = torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0).item()
    assert cosine >= 0.999, cosine
    assert grad.norm().item() == pytest.approx(ref_grad.norm().item(), rel=1e-3)


def test_token_batching_with_gradient_checkpointing():
    model = lora_model(checkpointing=True)
    step_rows = rows("response", packed=False)
    ref_loss, ref_grad = straightforward(model, step_rows, 8, False)
    loss, grad, _ = batched(model, step_rows, 128, 8)
    assert loss == pytest.approx(ref_loss, rel=1e-3)
    assert torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0).item() >= 0.999


def test_plan_passes_keeps_every_record_once_and_respects_the_budget():
    step_rows = rows("all", packed=True)
    passes = plan_passes(step_rows, 70)
    assert sum(p.records for p in passes) == 8
    assert all(p.tokens <= 70 or p.records == 1 for p in passes)
    joined = torch.cat([p.input_ids[0] for p in passes]).tolist()
    assert joined == [t for ids, _ in records_of(step_rows) for t in ids]
    first = passes[0]
    assert first.cu_seqlens.tolist()[0] == 0 and first.cu_seqlens.tolist()[-1] == first.tokens
    # positions restart per record; trained positions predict the next token of the same record
    assert first.position_ids[0, :23].tolist() == list(range(23)) and first.position_ids[0, 23].item() == 0
    assert all(first.cu_seqlens[1:].tolist()[k] - 1 not in first.positions.tolist() for k in range(first.records))


def test_targets_count_matches_the_straightforward_count():
    for packed in (False, True):
        step_rows = rows("response", packed)
        batch = collate(step_rows, 0, packed=packed)
        assert step_targets(plan_passes(step_rows, 50)) == batch.target_tokens


def test_varlen_fallback_equals_per_record_causal_attention():
    g = torch.Generator().manual_seed(1)
    lengths = [5, 9, 3]
    q, k, v = (torch.randn(sum(lengths), 4, 16, generator=g) for _ in range(3))
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    out = varlen.attend(q, k, v, cu, 9, None)
    start = 0
    for n in lengths:
        sl = slice(start, start + n)
        ref = torch.nn.functional.scaled_dot_product_attention(
            q[sl].transpose(0, 1), k[sl].transpose(0, 1), v[sl].transpose(0, 1), is_causal=True).transpose(0, 1)
        torch.testing.assert_close(out[sl], ref)
        start += n
    # grouped-query attention: 2 K/V heads serve 4 query heads
    out_gqa = varlen.attend(q, k[:, :2], v[:, :2], cu, 9, None)
    torch.testing.assert_close(out_gqa, varlen.attend(q, k[:, :2].repeat_interleave(2, 1),
                                                      v[:, :2].repeat_interleave(2, 1), cu, 9, None))


def test_verify_passes_accepts_the_model_and_restores_attention(model):
    before = model.config._attn_implementation
    verify_passes(model, 50000, torch.device("cpu"))
    assert model.config._attn_implementation == before == "sdpa"


@pytest.mark.parametrize("loss_on", ["response", "all"])
def test_passes_padded_for_cuda_graphs_compute_the_same_step(model, loss_on):
    """pad_to_bucket's filler record, empty records and ignored trained positions change nothing."""
    step_rows = rows(loss_on, packed=False)
    ref_loss, ref_grad, _ = batched(model, step_rows, 64, 16)
    loss, grad, _ = batched(model, step_rows, 64, 16, padded=True)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0).item() >= 0.99999


def test_pad_to_bucket_shapes():
    assert [bucket(n) for n in (1, 64, 65, 1155, 2048, 2049)] == [64, 64, 128, 1280, 2048, 2304]
    shapes = set()
    for n in range(900, 1300):  # 400 lengths, loss on all tokens, share 5 shapes (each padded by at most 12.5%)
        ids = list(range(1, n + 1))
        batch = pad_to_bucket(plan_passes([Sequence(ids, [IGNORE] + ids[1:], (n,))], 4096)[0])
        assert batch.tokens >= n and batch.tokens <= n * 1.125 + 64
        assert batch.cu_seqlens.numel() % SLOTS == 0 and batch.cu_seqlens.tolist()[-1] == batch.tokens
        assert batch.max_len == batch.tokens and batch.position_ids[0, n:].tolist() == list(range(batch.tokens - n))
        assert (batch.targets[n - 1:] == IGNORE).all() and batch.positions.numel() in (bucket(n - 1), batch.tokens)
        shapes.add(batch.shape)
    assert len(shapes) == 5, shapes  # token counts 960, 1024, 1152, 1280, 1408: trained positions follow them


def test_verify_passes_checks_the_padded_pass(model):
    verify_passes(model, 50000, torch.device("cpu"), padded=True)
