"""decode.py, the static-cache decoding loop: the same tokens as transformers' `generate`, sampling as specified,
captured steps kept per shape and adapter state."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import short_records

from qlora_engine import decode, decode_layers
from qlora_engine.generate import Generator, render_prompts
from qlora_engine.template import load_template


@pytest.fixture(scope="module")
def loaded(trained_run):
    """The trained run's model (tiny Phi, fp32, CPU) with its adapter, as the generate request holds it."""
    generator = Generator()
    adapter = str(trained_run["run_dir"] / "adapter")
    generator.generate({"config": trained_run["config"], "adapter": adapter, "records": [{"dialogue": "hi"}],
                        "maxNewTokens": 1})
    template = load_template(str(trained_run["ws"].template))
    recs = [{"dialogue": r["dialogue"]} for r in short_records(5, dialogue_chars=90) + short_records(3, offset=40)]
    tok = generator._tokenizer
    encoded = tok(render_prompts(template, recs), padding=True, return_tensors="pt")
    assert len(set(encoded["attention_mask"].sum(dim=1).tolist())) > 2  # really left-padded
    return generator._model, tok, encoded


def _transformers(model, tok, encoded, max_new):
    with torch.inference_mode():
        out = model.generate(**encoded, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    return out[:, encoded["input_ids"].shape[1]:].tolist()


def _decode(model, tok, encoded, max_new, **kw):
    with torch.inference_mode():
        return decode.decode(model, encoded["input_ids"], encoded["attention_mask"], max_new=max_new,
                             eos=tok.eos_token_id, pad=tok.pad_token_id, **kw)


@pytest.mark.parametrize("use_adapter", [True, False], ids=["adapter", "base"])
def test_greedy_equals_transformers_generate_token_for_token(loaded, use_adapter):
    model, tok, encoded = loaded
    assert decode.supported(model)
    scope = model.disable_adapter() if not use_adapter else torch.inference_mode()
    with scope:
        expected = _transformers(model, tok, encoded, 24)
        got = _decode(model, tok, encoded, 24)
    assert not got.captured  # no CUDA here: the same loop runs eagerly
    width = max(len(row) for row in expected)
    assert got.tokens == [row + [tok.pad_token_id] * (width - len(row)) for row in expected][:len(got.tokens)]
    assert len(got.tokens[0]) == width


def test_prefill_in_chunks_changes_nothing(loaded):
    model, tok, encoded = loaded
    assert _decode(model, tok, encoded, 12, chunk=5).tokens == _decode(model, tok, encoded, 12).tokens


def test_rows_mixing_adapter_and_base_equal_separate_batches(loaded):
    model, tok, encoded = loaded
    adapter = _decode(model, tok, encoded, 16).tokens
    with model.disable_adapter():
        base = _decode(model, tok, encoded, 16).tokens
    assert adapter != base
    rows = [i % 2 == 0 for i in range(encoded["input_ids"].shape[0])]
    mixed = _decode(model, tok, encoded, 16, adapter_rows=rows).tokens
    width = min(len(mixed[0]), len(adapter[0]), len(base[0]))
    for i, is_adapter in enumerate(rows):
        assert mixed[i][:width] == (adapter if is_adapter else base)[i][:width]


def test_stop_at_ends_a_row_and_records_where(loaded):
    model, tok, encoded = loaded
    free = _decode(model, tok, encoded, 12).tokens
    # row 0 "stops" once it has 3 tokens; the others never do
    got = _decode(model, tok, encoded, 12, stop_at=lambda ids: 3 if ids[:3] == free[0][:3] and len(ids) >= 3
                  else None)
    assert got.done_at.get(0) == 3 and set(got.done_at) <= {0} | {i for i, r in enumerate(free) if r[:3] == free[0][:3]}
    assert got.tokens[0][:3] == free[0][:3]
    # the host looks after the first token, then every CHECK_EVERY: from then on the row is padding
    assert all(t == tok.pad_token_id for t in got.tokens[0][1 + decode.CHECK_EVERY:])


def test_choose_greedy_and_nucleus():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 3.0, 1.0, -2.0]] * 4000)
    assert decode._choose(logits, 0.0, 1.0).eq(1).all()
    assert decode._choose(logits, 1.0, 0.01).eq(1).all()  # the nucleus holds the most likely token only
    sampled = decode._choose(logits, 1.0, 1.0)
    share = torch.bincount(sampled, minlength=4).float() / len(sampled)
    assert torch.allclose(share, logits[0].softmax(-1), atol=0.03)
    nucleus = decode._choose(logits, 1.0, 0.9)  # 0.84 + 0.11 reach 0.9: two tokens left
    assert set(nucleus.unique().tolist()) == {1, 2}


def test_graphs_are_kept_per_shape_and_adapter_state(loaded):
    model, _, _ = loaded
    graphs = decode.DecodeGraphs(limit=2)
    first = graphs.step(model, 2, 128, False)
    assert graphs.step(model, 2, 128, False) is first
    assert graphs.step(model, 2, 128, True) is not first  # mixing rows is another graph
    with model.disable_adapter():
        assert graphs.step(model, 2, 128, False) is not first  # so is the adapter switched off
    assert graphs.step(model, 2, 128, False) is not first  # limit 2: the first was dropped


SMOLLM2 = Path(__file__).resolve().parents[2] / "samples" / "models" / "smollm2-135m-instruct"


@pytest.mark.skipif(not (SMOLLM2 / "config.json").is_file(), reason="SmolLM2 is imported by `npm install`")
def test_llama_family_with_grouped_kv_heads_equals_transformers():
    """SmolLM2-135M-Instruct (Llama, 3 KV heads for 9 query heads), real weights, fp32 CPU: the same greedy tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(SMOLLM2), padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(str(SMOLLM2), dtype=torch.float32, attn_implementation="sdpa").eval()
    assert decode.supported(model)
    prompts = [f"Summarize: {r['dialogue']}\nSummary:" for r in short_records(4, dialogue_chars=160)]
    encoded = tok(prompts, padding=True, return_tensors="pt")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.inference_mode():
        out = model.generate(**encoded, max_new_tokens=20, do_sample=False, pad_token_id=pad,
                             eos_token_id=tok.eos_token_id)
        got = decode.decode(model, encoded["input_ids"], encoded["attention_mask"], max_new=20,
                            eos=tok.eos_token_id, pad=pad)
    expected = out[:, encoded["input_ids"].shape[1]:].tolist()
    assert [row[:len(e)] for row, e in zip(got.tokens, expected)] == expected


def test_out_of_memory_drops_dense_weights_and_graphs_then_retries(loaded, monkeypatch):
    """A step that does not fit (a dense copy, or another graph's cache, on a small GPU) frees them and retries on the
    packed weights instead of failing the request."""
    model, _, _ = loaded
    graphs = decode.DecodeGraphs(dense=True)
    graphs._steps[("old",)] = object()
    calls = []
    original = decode._new_step

    def tight(model_, rows, length, mixed, dense, compile=False):
        calls.append(dense)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(model_, rows, length, mixed, dense, compile)
    monkeypatch.setattr(decode, "_new_step", tight)
    monkeypatch.setattr(decode, "dense_weights", lambda m: {})  # no 4-bit layers on the CPU
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    step = graphs.step(model, 2, 128, False)
    assert calls == [{}, {}] and graphs.dense is False and ("old",) not in graphs._steps
    assert graphs.step(model, 2, 128, False) is step  # kept under its key, reused


def test_merged_dense_weights_compute_what_the_adapter_computes():
    """`merge`: a 4-bit linear's dequantized weight with the LoRA update folded in (W + B·A·scale) gives the LoRA
    layer's output (base product + scaled adapter product) to fp32 rounding; the plain copy gives the base's. On
    bitsandbytes' CPU backend, fp32 compute."""
    bnb = pytest.importorskip("bitsandbytes")
    from peft import LoraConfig, get_peft_model

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = bnb.nn.Linear4bit(64, 64, bias=True, compute_dtype=torch.float32, quant_type="nf4")
            self.fc1 = bnb.nn.Linear4bit(64, 128, bias=False, compute_dtype=torch.float32, quant_type="nf4")

        def forward(self, x):
            return self.fc1(torch.relu(self.q_proj(x)))

    torch.manual_seed(0)
    block = Block()
    for linear in (block.q_proj, block.fc1):
        linear.weight = bnb.nn.Params4bit(torch.randn_like(linear.weight.data, dtype=torch.float32) * 0.1,
                                          requires_grad=False, quant_type="nf4")
    block = block.to("cpu")  # quantizes
    for linear in (block.q_proj, block.fc1):  # no CPU-only repacking of the weights at inference (a GPU never does)
        linear.support_avx512bf16_for_cpu = False
    model = get_peft_model(block, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], lora_dropout=0.0,
                                             init_lora_weights=False)).eval()
    x = torch.randn(3, 5, 64)
    with torch.inference_mode():
        adapter = model(x)
        with model.disable_adapter():
            base = model(x)
        plain = decode.dense_weights(model)
        merged = decode.merged_weights(model, plain)
        assert len(plain) == 2 and len(merged) == 2
        assert model.base_model.model.q_proj in merged  # the LoRA layer itself runs the merged product
        with decode._dense_linears(merged):
            folded = model(x)
        with model.disable_adapter(), decode._dense_linears(plain):
            dense_base = model(x)
    assert (adapter - base).abs().max() > 1e-2  # the adapter really changes the output
    torch.testing.assert_close(folded, adapter, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense_base, base, rtol=1e-5, atol=1e-5)


def _rewind(step):
    """A step back at position 0 of an empty cache, as a new decode starts it."""
    step.cache.reset()
    step.mask.zero_()
    step.cpos.zero_()
    step.pos.zero_()


@pytest.mark.parametrize("rows", [2, 1])
def test_compiled_layers_share_one_graph_and_give_the_eager_logits(loaded, rows, monkeypatch):
    """Compiled steps (decode_layers.py): every decoder layer runs one compiled forward, so the model compiles one
    graph however many layers it has (the cache index and the dense weights must not specialize it), and a step gives
    the eager step's logits. Two rows mix adapter and base; one row runs its dense linears through `matvec`; the base
    linears run on dense weights (as buffers), the GPU's default path; Inductor's CPU backend here."""
    model, _, _ = loaded
    hf = decode._hf(model)
    layers = decode.layers_of(model)
    assert len(layers) >= 2
    bases = [m.base_layer for m in hf.modules() if isinstance(getattr(m, "base_layer", None), torch.nn.Linear)]
    dense = {m: (m, m.weight.detach().clone()) for m in bases}
    step = decode._Step(model, rows, 128, True, dense)
    step.row_scale.copy_(torch.tensor([1.0, 0.0][:rows]).view(rows, 1, 1))
    step.ids.copy_(torch.tensor([[5], [7]][:rows]))

    def three_steps(compiled):
        _rewind(step)
        with step.row_hooks():
            return [step._step(compiled).clone() for _ in range(3)]

    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    with torch.inference_mode():
        eager = three_steps(False)
        with decode._recompile_limit():
            compiled = three_steps(True)
            again = three_steps(True)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    if rows == 1:  # each dense linear of the layer became generated code (matvec) instead of a call to the BLAS
        calls = counters["inductor"]["extern_calls"]
        monkeypatch.setattr(decode, "MATVEC", False)
        torch._dynamo.reset()
        counters.clear()
        with torch.inference_mode():
            torch.testing.assert_close(three_steps(True)[0], eager[0], rtol=1e-4, atol=1e-4)
        in_layer = set(layers[0].modules())
        assert counters["inductor"]["extern_calls"] - calls == sum(m in in_layer for m in dense) > 0
    assert not hasattr(layers[0], "_decode_weight") and "forward" not in vars(layers[0])  # all undone after a step
    for a, b, c in zip(eager, compiled, again):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
        assert torch.equal(b, c)
    if rows == 2:
        assert (eager[0][0] - eager[0][1]).abs().max() > 1e-3  # the adapter row differs from the base row


def test_a_failed_compilation_leaves_the_step_uncompiled(loaded, monkeypatch, caplog):
    """Compiled steps fall back to eager ones when Dynamo or Inductor fail (an unsupported op, no C compiler): the
    warm-up warns, marks the step uncompiled, and its steps compute what eager steps do; DecodeGraphs then stops
    asking for compilation."""
    model, _, _ = loaded

    def broken(*args, **kwargs):
        raise RuntimeError("backend='inductor' raised: no C++ compiler found")
    monkeypatch.setattr(decode_layers, "_compiled", lambda one_row=False: broken)
    step = decode._Step(model, 1, 128, False)
    step.compiled = True
    with torch.inference_mode(), step.row_hooks():
        step.warm_up()
        assert step.compiled is False and "decoding uncompiled" in caplog.text
        _rewind(step)
        after = step._step(step.compiled)
    assert torch.isfinite(after).all()

    monkeypatch.setattr(decode, "_graphs_possible", lambda m: True)
    monkeypatch.setattr(decode._Step, "capture", lambda self: self.warm_up())
    graphs = decode.DecodeGraphs(compile=True)
    with torch.inference_mode():
        graphs.step(model, 1, 128, False)
    assert graphs.compile is False
