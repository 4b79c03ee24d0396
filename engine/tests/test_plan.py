"""train/plan: exact parameter counts from a weightless skeleton, and a memory estimate that behaves."""
from __future__ import annotations

import pytest
import torch

from conftest import PHI2, TINY

from qlora_engine.plan import estimate


def test_tiny_model_counts_match_peft(ws):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = ["q_proj", "k_proj", "v_proj", "dense", "fc1"]
    plan = estimate(ws.config(lora={"r": 8, "target_modules": targets}))
    model = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32)
    base = sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM"))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert plan["baseParameters"] == base
    assert plan["devices"] == 1
    assert plan["loraParameters"] == trainable


def test_numbers_are_positive_and_consistent(ws):
    plan = estimate(ws.config(train={"gradient_checkpointing": True}))
    assert all(t["bytes"] > 0 and t["detail"] for t in plan["terms"])
    assert [t["bytes"] for t in plan["terms"]] == sorted((t["bytes"] for t in plan["terms"]), reverse=True)
    assert plan["peakBytes"] == sum(t["bytes"] for t in plan["terms"])
    assert plan["peakBytes"] == plan["peakBytesWithCheckpointing"]
    assert plan["peakBytesWithCheckpointing"] < plan["peakBytesWithoutCheckpointing"]
    without = estimate(ws.config(train={"gradient_checkpointing": False}))
    assert without["peakBytes"] == plan["peakBytesWithoutCheckpointing"]
    if not torch.cuda.is_available():
        assert plan["device"] is None and plan["fits"] is None


def test_phi2_plan_from_config_alone(ws):
    """The real Phi-2 architecture (config.json only, no weights here): exact sizes, QLoRA-sized estimate."""
    config = ws.config(model=str(PHI2), quantization="nf4", max_length=2048,
                       lora={"r": 32, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "dense"]},
                       train={"micro_batch_size": 1, "gradient_checkpointing": True, "optimizer": "paged_adamw_8bit"})
    plan = estimate(config)
    assert plan["baseParameters"] == 2_779_683_840
    assert plan["loraParameters"] == 32 * 32 * (4 * (2560 + 2560))  # 32 layers x 4 modules x r(in + out)
    terms = {t["name"]: t["bytes"] for t in plan["terms"]}
    # 2.5B linear params in 4 bit (+ absmax) is ~1.4 GB; the whole plan lands in single-digit GiB
    assert 1.2e9 < terms["quantized linear weights"] < 1.6e9
    assert 2 * 2**30 < plan["peakBytes"] < 12 * 2**30
    dq = estimate({**config, "double_quant": True})
    saved = terms["quantized linear weights"] - {t["name"]: t["bytes"] for t in dq["terms"]}["quantized linear weights"]
    assert saved == pytest.approx(2_779_683_840 * 0.0466, rel=0.15)  # ~0.37 bit per quantized parameter
    assert plan["peakBytesWithCheckpointing"] < plan["peakBytesWithoutCheckpointing"]


def test_an_fsdp_plan_is_one_gpu_share_and_says_what_loading_needs(ws):
    config = ws.config(model=str(PHI2), quantization="nf4", max_length=2048,
                       train={"micro_batch_size": 1, "gradient_checkpointing": True, "devices": 2, "strategy": "fsdp"})
    sharded, whole = estimate(config), estimate({**config, "train": {**config["train"], "strategy": "ddp"}})
    assert sharded["devices"] == whole["devices"] == 2
    assert sharded["picks"]["strategy"] == "fsdp" and whole["picks"]["strategy"] == "ddp"
    assert sharded["peakBytes"] < whole["peakBytes"] and "loadBytes" not in whole
    names = {t["name"]: t["bytes"] for t in whole["terms"]}
    assert sharded["loadBytes"] == names["quantized linear weights"] + names["other base weights"]
    assert any(t["name"] == "gathered layers (FSDP)" for t in sharded["terms"])
