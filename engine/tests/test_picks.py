"""plan.pick: how "auto" micro_batch_size, gradient_checkpointing and tokens_per_pass are resolved from the plan
and the free memory (no GPU needed: the memory model is the plan's, the free memory is given)."""
from __future__ import annotations

import pytest

from conftest import PHI2, resolved_config

from qlora_engine.config import parse_config
from qlora_engine.plan import SATURATING_TOKENS, Model, pick, resolve, step_need

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
    config = phi2(gradient_checkpointing=True, tokens_per_pass=4096, micro_batch_size=2)
    picks = pick(config, 139 * GiB)
    assert {k: v for k, v in picks.items() if k not in ("compile", "cudaGraphs")} == {
        "microBatchSize": 2, "gradientCheckpointing": True, "tokensPerPass": 4096, "reason": "as configured"}
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
