"""The stock anchor: transformers + peft + bitsandbytes NF4 QLoRA on Phi-2 shapes in a plain loop (bf16 compute,
LoRA r32 on q/k/v/dense, fused torch AdamW, random tokens), with or without gradient checkpointing. The loop of
the project's shared `stock_nf4_probe.py`, one configuration per call so each gets its own process and peak.

    python bench/stock_loop.py MODEL_DIR --batch 4 --seq 2048 [--checkpointing] [--upcast]

Prints one JSON line (stack "stock").
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, BitsAndBytesConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--upcast", action="store_true", help="peft's prepare_model_for_kbit_training (fp32 upcast)")
    p.add_argument("--steps", type=int, default=8)
    a = p.parse_args()
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    m = AutoModelForCausalLM.from_pretrained(a.model, quantization_config=q, dtype=torch.bfloat16,
                                             device_map={"": 0}, attn_implementation="sdpa")
    if a.upcast:
        m = prepare_model_for_kbit_training(m, use_gradient_checkpointing=a.checkpointing)
    elif a.checkpointing:
        m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        m.enable_input_require_grads()
    m = get_peft_model(m, LoraConfig(r=32, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                     target_modules=["q_proj", "k_proj", "v_proj", "dense"]))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=2e-4, fused=True)
    x = torch.randint(0, 50000, (a.batch, a.seq), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(a.steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = m(input_ids=x, labels=x)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        losses.append(out.loss.item())
    steady = sorted(times[2:])
    dt = steady[len(steady) // 2]
    print(json.dumps({"stack": "stock", "variant": f"{'upcast, ' if a.upcast else ''}{'ckpt' if a.checkpointing else 'no ckpt'} "
                      f"{a.batch}x{a.seq}", "device": torch.cuda.get_device_name(0), "steps": a.steps,
                      "step_s_median": dt, "tokens_per_s": a.batch * a.seq / dt,
                      "peak_bytes": torch.cuda.max_memory_allocated(), "checkpointing": a.checkpointing,
                      "losses": losses}))


if __name__ == "__main__":
    main()
