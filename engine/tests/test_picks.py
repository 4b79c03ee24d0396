"""plan.pick: how "auto" micro_batch_size, gradient_checkpointing and tokens_per_pass are resolved from the plan
and the free memory (no GPU needed: the memory model is the plan's, the free memory is given)."""
from __future__ import annotations

import pytest

from conftest import PHI2, resolved_config

from qlora_engine.config import parse_config
from qlora_engine.errors import BadConfig
from qlora_engine.plan import SATURATING_TOKENS, USABLE, Model, pick, resolve, step_need

GiB = 1 << 30


def phi2(**train):
    return parse_config(resolved_config(model=str(PHI2), data={"train": "/d/train.jsonl"}, template="/d/t.prompt.yaml",
                                        max_length=2048, quantization="nf4", compute_dtype="bfloat16",
                                        train={"micro_batch_size": 1, "gradient_accumulation": 4, **train}))


@pytest.fixture(scope="module")
def tutorial():
    config = phi2()
    return config, Model(config)


def test_defaults_are_auto():
    config = phi2()
    assert config.train.gradient_checkpointing == "auto" and config.train.tokens_per_pass == "auto"
    assert config.train.token_batching is True and config.train.fp32_upcast == "auto"


def test_step_need_is_the_step_capped_at_saturation():
    assert step_need(phi2()) == 4 * 2048  # 1 x 4 records of up to 2048 tokens
    assert step_need(phi2(gradient_accumulation=64)) == SATURATING_TOKENS
    assert step_need(phi2(micro_batch_size=16, gradient_accumulation=1)) == 16 * 2048  # one micro-batch at least
    assert step_need(phi2(micro_batch_size="auto")) == SATURATING_TOKENS


def test_plenty_of_memory_turns_checkpointing_off_and_takes_the_whole_step(tutorial):
    config, model = tutorial
    picks = pick(config, 139 * GiB, model)
    assert picks["gradientCheckpointing"] is False and picks["tokensPerPass"] == 4 * 2048
    assert picks["microBatchSize"] == 1 and "checkpointing off" in picks["reason"]


def test_little_memory_turns_checkpointing_on_and_shrinks_the_pass(tutorial):
    config, model = tutorial
    without = model.fit(22 * GiB, False)
    assert 2048 <= without < 4 * 2048  # a 24 GB card holds less than the step without checkpointing
    picks = pick(config, 22 * GiB, model)
    assert picks["gradientCheckpointing"] is True
    assert picks["tokensPerPass"] == min(4 * 2048, model.fit(22 * GiB, True))
    assert model.peak(picks["tokensPerPass"], True)[0] <= 22 * GiB


def test_the_pass_never_goes_below_max_length(tutorial):
    config, model = tutorial
    picks = pick(config, 3 * GiB, model)  # nothing fits: still one record per pass (training then reports OOM)
    assert picks["tokensPerPass"] == 2048 and picks["gradientCheckpointing"] is True


def test_auto_micro_batch_fills_the_pass():
    config = phi2(micro_batch_size="auto", gradient_accumulation=1)
    model = Model(config)
    picks = pick(config, 139 * GiB, model)
    assert picks["microBatchSize"] == picks["tokensPerPass"] // 2048 == SATURATING_TOKENS // 2048
    small = pick(config, 22 * GiB, model)
    assert small["microBatchSize"] == max(1, small["tokensPerPass"] // 2048)


def test_explicit_settings_are_kept(tutorial):
    config = phi2(gradient_checkpointing=True, tokens_per_pass=4096, micro_batch_size=2, dense_base=False)
    picks = pick(config, 139 * GiB)
    assert {k: v for k, v in picks.items() if k not in ("compile", "cudaGraphs", "denseBase")} == {
        "microBatchSize": 2, "gradientCheckpointing": True, "tokensPerPass": 4096, "strategy": "ddp",
        "reason": "as configured"}
    assert pick(phi2(compile=False), 139 * GiB)["compile"] is False
    assert pick(phi2(compile=True), 139 * GiB)["compile"] is True
    assert pick(phi2(compile=True), None)["compile"] is False  # never on a CPU


def test_without_token_batching_a_pass_is_a_micro_batch():
    config = phi2(token_batching=False, micro_batch_size=3)
    assert pick(config, 139 * GiB)["tokensPerPass"] == 3 * 2048


def test_cpu_picks_and_resolve():
    config = phi2(micro_batch_size="auto")
    resolved, picks = resolve(config, None)
    assert picks["gradientCheckpointing"] is False and picks["microBatchSize"] == 1
    assert resolved.train.micro_batch_size == 1 and resolved.train.gradient_checkpointing is False
    assert resolved.train.tokens_per_pass == picks["tokensPerPass"]


def test_upcast_plans_an_fp32_stream():
    fp16 = parse_config(resolved_config(model=str(PHI2), data={"train": "/d/t.jsonl"}, template="/d/t.prompt.yaml",
                                        quantization="nf4", compute_dtype="float16"))
    bf16 = parse_config(resolved_config(model=str(PHI2), data={"train": "/d/t.jsonl"}, template="/d/t.prompt.yaml",
                                        quantization="nf4", compute_dtype="bfloat16"))
    assert Model(fp16).a == 4 and Model(bf16).a == 2
    assert Model(fp16).peak(2048, True)[0] > Model(bf16).peak(2048, True)[0]


def test_compile_plans_fewer_saved_activations():
    eager, compiled = Model(phi2(compile=False)), Model(phi2(compile=True))
    assert compiled.compiled and not eager.compiled
    ratio = compiled.peak(8192, False)[0] / eager.peak(8192, False)[0]
    assert 0.6 < ratio < 0.75  # measured on an H200: 27.2 / 41.4 GiB = 0.66


# Peaks measured by bench/train_speed.sh on an NVIDIA H200, 2026-12-02 (torch.cuda.max_memory_allocated, Phi-2
# shapes, NF4, LoRA r 32 on q/k/v/dense, fused AdamW, 4 packed rows of 2048 tokens per pass): docs/performance.md.
MEASURED_8192 = {(False, False): 41.42, (False, True): 5.00, (True, False): 27.18, (True, True): 4.35}


@pytest.mark.parametrize("compiled,checkpointing", sorted(MEASURED_8192))
def test_plan_is_within_15_percent_of_the_measured_peaks(compiled, checkpointing):
    model = Model(phi2(micro_batch_size=4, gradient_accumulation=1, compile=compiled, optimizer="adamw_torch_fused"))
    ratio = model.peak(8192, checkpointing)[0] / (MEASURED_8192[(compiled, checkpointing)] * GiB)
    assert 0.85 <= ratio <= 1.15, ratio


def test_cuda_graphs_are_picked_on_a_gpu_without_checkpointing(tutorial):
    assert pick(phi2(), 139 * GiB)["cudaGraphs"] is True  # the tutorial's step: checkpointing auto -> off
    assert pick(phi2(gradient_checkpointing=True), 139 * GiB)["cudaGraphs"] is False  # recomputation: no graphs
    assert pick(phi2(), 6 * GiB)["cudaGraphs"] is False  # a small card: checkpointing auto -> on
    assert pick(phi2(cuda_graphs=False), 139 * GiB)["cudaGraphs"] is False
    assert pick(phi2(cuda_graphs=True), None)["cudaGraphs"] is False  # never on a CPU
    assert pick(phi2(token_batching=False), 139 * GiB)["cudaGraphs"] is False


def test_strategy_auto_shards_only_when_one_gpu_cannot_train_the_whole_model(tutorial):
    config, model = tutorial
    smallest = model.peak(2048, True)[0]  # one max_length record, checkpointing on: the least ddp can do
    roomy, tight = pick(config, 139 * GiB, model, devices=2), pick(config, smallest / USABLE * 0.9, model, devices=2)
    assert roomy["strategy"] == "ddp" and roomy["compile"] is True
    assert "one GPU trains the whole model" in roomy["reason"]
    assert tight["strategy"] == "fsdp" and "sharded over 2 GPUs" in tight["reason"]
    assert tight["compile"] is False and tight["cudaGraphs"] is False  # not combined with FSDP
    # the shards leave room for passes longer than the one record ddp could not even fit
    assert tight["gradientCheckpointing"] is True and tight["tokensPerPass"] > 2048
    assert model.sharded(2).peak(tight["tokensPerPass"], True)[0] <= smallest * 0.9
    assert pick(config, smallest / USABLE * 0.9, model, devices=1)["strategy"] == "ddp"  # one device: nothing to shard
    assert pick(config, None, model, devices=2)["strategy"] == "ddp"  # no GPU: no memory to plan
    # fsdp needs token batching: auto stays ddp and says why
    unbatched = phi2(token_batching=False)
    held = pick(unbatched, smallest / USABLE * 0.9, Model(unbatched), devices=2)
    assert held["strategy"] == "ddp" and "fsdp is out" in held["reason"]


def test_explicit_strategies_and_what_fsdp_refuses(tutorial):
    config, model = tutorial
    assert pick(phi2(strategy="fsdp"), 139 * GiB, model, devices=2)["strategy"] == "fsdp"
    assert pick(phi2(strategy="ddp"), 1 * GiB, model, devices=2)["strategy"] == "ddp"
    assert pick(phi2(strategy="fsdp"), 139 * GiB, model, devices=1)["strategy"] == "ddp"
    for refused in ({"token_batching": False}, {"compile": True}, {"cuda_graphs": True}):
        with pytest.raises(BadConfig, match="train.strategy fsdp"):
            pick(phi2(strategy="fsdp", **refused), 139 * GiB, model, devices=2)
    int8 = parse_config(resolved_config(model=str(PHI2), data={"train": "/d/t.jsonl"}, template="/d/t.prompt.yaml",
                                        quantization="int8", train={"strategy": "fsdp", "devices": 2}))
    with pytest.raises(BadConfig, match="int8"):
        pick(int8, 139 * GiB, devices=2)
    resolved, picks = resolve(phi2(strategy="fsdp"), 139 * GiB, devices=2)
    assert resolved.train.strategy == "fsdp" and picks["strategy"] == "fsdp"
    assert resolved.train.compile is False and resolved.train.cuda_graphs is False


def test_fsdp_plans_one_gpu_share_of_the_base(tutorial):
    config, whole = tutorial
    terms = lambda m: {t["name"]: t["bytes"] for t in m.peak(2048, True)[2]}  # noqa: E731
    one = terms(whole)
    for n in (2, 4):
        sharded = whole.sharded(n)
        got = terms(sharded)
        # the 4-bit weights split n ways; their absmax (4 B per 64-block) stays whole on every GPU
        assert got["linear weights (sharded)"] == pytest.approx(whole.quant_params * (0.5 / n + 4 / 64), abs=1)
        layer = (whole.layer_quant * 0.5 + whole.layer_other * 2) / 32  # one Phi-2 layer, bf16 norms and biases
        assert got["gathered layers (FSDP)"] == pytest.approx(2 * layer, abs=1)
        # embeddings and norms sharded; lm_head whole: less than ddp's whole copy, more than 1/n of it
        assert one["other base weights"] / n < got["other base weights (sharded)"] < one["other base weights"]
        assert got["LoRA weights, gradients, optimizer"] == one["LoRA weights, gradients, optimizer"]  # not sharded
        assert sharded.peak(2048, True)[0] < whole.peak(2048, True)[0]
    assert whole.sharded(4).peak(2048, True)[0] < whole.sharded(2).peak(2048, True)[0]
    # loading (before sharding) holds the whole base on every GPU
    assert whole.load_bytes() == one["quantized linear weights"] + one["other base weights"]


def test_dense_base_is_picked_when_the_dequantized_weights_leave_half_the_gpu_free(tutorial):
    big = pick(phi2(), 139 * GiB)
    assert big["denseBase"] is True and "dense base on" in big["reason"]
    assert pick(phi2(), 22 * GiB)["denseBase"] is True  # the tutorial's step on a 24 GB card: ~7.8 GiB with it
    small = pick(phi2(), 12 * GiB)  # a 12 GB card: the 4-bit weights stay 4-bit
    assert small["denseBase"] is False and "dense base off" in small["reason"]
    assert pick(phi2(dense_base=False), 139 * GiB)["denseBase"] is False
    assert pick(phi2(dense_base=True), 12 * GiB)["denseBase"] is True  # as asked, whatever the plan says
    assert pick(phi2(), None)["denseBase"] is False  # never on a CPU
    model = Model(phi2())
    extra = model.densified().peak(2048, False)[0] - model.peak(2048, False)[0]
    assert 3.5 * GiB < extra < 4.5 * GiB  # Phi-2's 2.5e9 linear weights at 2 B instead of ~0.53 B
