"""QLoRA Studio's engine, timed step by step, for bench/train_speed.sh (one variant per process).

    python bench/engine_speed.py --model /tmp/phi2-random --train TRAIN.jsonl --validation DEV.jsonl --variant tutorial
        [--set train.loss_chunk=1024] [--inductor triton.cudagraphs=true]   (one-off variations of a variant)

Runs the engine's own code (Recipe.validate, setup, _optimizer_step: the training loop's step) and reports, as one
JSON line: seconds per optimizer step (mean over the timed steps, and median), tokens/s, the projected time of
1000 steps, peak GPU memory, the plan's estimate and picks, MFU, and separately: data preparation, model loading,
one evaluation and one checkpoint write. The host reads the loss every 25 steps, as the tutorial logs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "engine"))

import torch  # noqa: E402

from qlora_engine.plan import estimate  # noqa: E402
from qlora_engine.recipe import Recipe  # noqa: E402

GIB = 1 << 30
PEAK_FLOPS = 790e12  # bf16 dense matrix rate measured on an H200 here (KINDS.md); the ceilings use it

# The engine's speed switches: off in tutorial_config, so a variant runs exactly what its name says; the "-defaults"
# variants (and packed-22GiB, which checks that auto still trains on a 24 GB card) take today's defaults.
SPEED_OFF = {"compile": False, "cuda_graphs": False, "dense_base": False, "tf32": False}
DEFAULTS = {"compile": "auto", "cuda_graphs": "auto", "dense_base": "auto", "tf32": True}

# name -> (overrides of the tutorial config, timed steps)
VARIANTS = {
    # today's engine before token batching, as it ran the tutorial: fp16 compute, fp32 upcast, one padded pass per
    # record, gradient checkpointing
    "legacy-tutorial": ({"compute_dtype": "float16", "train": {"token_batching": False, "fp32_upcast": True,
                                                                "gradient_checkpointing": True}}, 12),
    "tutorial-fp16": ({"compute_dtype": "float16"}, 60),
    "tutorial": ({}, 100),
    "tutorial-fused": ({"train": {"optimizer": "adamw_torch_fused"}}, 100),
    "tutorial-compile": ({"train": {"optimizer": "adamw_torch_fused", "compile": True}}, 100),
    # today's defaults on the tutorial's records (fused AdamW; compile, CUDA graphs, dense base and TF32 as picked)
    "tutorial-defaults": ({"train": {"optimizer": "adamw_torch_fused", **DEFAULTS}}, 997),  # + 3 warm-ups = 1000
    "tutorial-graphs": ({"train": {"optimizer": "adamw_torch_fused", "compile": True, "cuda_graphs": True}}, 100),
    "tutorial-graphs-eager": ({"train": {"optimizer": "adamw_torch_fused", "compile": False, "cuda_graphs": True}},
                              100),
    "packed": ({"packing": True, "loss_on": "response", "template": "SAMPLE",
                "train": {"micro_batch_size": "auto", "gradient_accumulation": 1,
                          "optimizer": "adamw_torch_fused"}}, 16),
    "packed-compile": ({"packing": True, "loss_on": "response", "template": "SAMPLE",
                        "train": {"micro_batch_size": "auto", "gradient_accumulation": 1,
                                  "optimizer": "adamw_torch_fused", "compile": True}}, 16),
    "packed-graphs": ({"packing": True, "loss_on": "response", "template": "SAMPLE",
                       "train": {"micro_batch_size": "auto", "gradient_accumulation": 1,
                                 "optimizer": "adamw_torch_fused", "compile": True, "cuda_graphs": True}}, 16),
    "packed-defaults": ({"packing": True, "loss_on": "response", "template": "SAMPLE",
                         "train": {"micro_batch_size": "auto", "gradient_accumulation": 1,
                                   "optimizer": "adamw_torch_fused", **DEFAULTS}}, 16),
    "packed-ckpt": ({"packing": True, "loss_on": "response", "template": "SAMPLE",
                     "train": {"micro_batch_size": 8, "gradient_accumulation": 1, "gradient_checkpointing": True,
                               "optimizer": "adamw_torch_fused"}}, 12),
    "packed-22GiB": ({"packing": True, "loss_on": "response", "template": "SAMPLE",
                      "train": {"micro_batch_size": "auto", "gradient_accumulation": 1,
                                "optimizer": "adamw_torch_fused", **DEFAULTS}}, 16),
}


def tutorial_config(model: str, train: str, validation: str) -> dict:
    """The classic tutorial's settings in the engine's config (bench/tutorial.prompt.yaml is its text format)."""
    schema = json.loads((ROOT / "schemas/finetune.schema.json").read_text())
    return {
        "model": model, "trust_remote_code": False, "quantization": "nf4", "double_quant": False,
        "compute_dtype": "auto",
        "lora": {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "dense"]},
        "data": {"train": train, "validation": validation, "test": None, "validation_split": 0.05},
        "template": str(ROOT / "bench/tutorial.prompt.yaml"), "max_length": 2048, "loss_on": "all", "packing": False,
        "train": {**{k: v.get("default") for k, v in schema["properties"]["train"]["properties"].items()},
                  "max_steps": 1000, "micro_batch_size": 1, "gradient_accumulation": 4, "learning_rate": 2e-4,
                  "lr_scheduler": "linear", "warmup_steps": 1, "optimizer": "paged_adamw_8bit",
                  "eval_every": 25, "eval_batches": 50, "save_every": 25, "log_every": 25, **SPEED_OFF},
    }


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--validation", required=True)
    p.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--set", action="append", default=[], help="config override KEY=JSON (dotted key), repeatable")
    p.add_argument("--inductor", action="append", default=[], help="torch._inductor.config KEY=JSON, repeatable")
    p.add_argument("--tf32", action="store_true", help="train.tf32: TF32 for the fp32 LoRA products")
    p.add_argument("--dense-base", action="store_true", help="train.dense_base: the 4-bit weights dequantized once")
    a = p.parse_args()
    overrides, steps = VARIANTS[a.variant]
    steps = a.steps or steps
    cfg = merge(tutorial_config(str(Path(a.model).resolve()), str(Path(a.train).resolve()),
                                str(Path(a.validation).resolve())), overrides)
    if a.tf32:
        cfg["train"]["tf32"] = True
    if a.dense_base:
        cfg["train"]["dense_base"] = True
    for item in a.set:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(value)
    for item in a.inductor:
        import torch._inductor.config as inductor_config
        key, value = item.split("=", 1)
        target = inductor_config
        *parents, leaf = key.split(".")
        for part in parents:
            target = getattr(target, part)
        setattr(target, leaf, json.loads(value))
    if cfg["template"] == "SAMPLE":
        cfg["template"] = str(ROOT / "samples/dialogsum/summarize.prompt.yaml")
    if a.variant.endswith("22GiB"):  # a 24 GB card's usable memory
        torch.cuda.set_per_process_memory_fraction(22 * GIB / torch.cuda.get_device_properties(0).total_memory)
    plan = estimate(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Recipe(cfg, Path(tmp) / "run")
        t = time.perf_counter()
        summary = recipe.validate()
        data_s = time.perf_counter() - t
        t = time.perf_counter()
        recipe.setup()
        load_s = time.perf_counter() - t
        recipe.model.train()
        step_losses = []
        t = time.perf_counter()
        for _ in range(a.warmup):  # includes torch.compile's compilation when train.compile is on
            step_losses.append(recipe._optimizer_step()[0])
            recipe.step += 1
        torch.cuda.synchronize()
        warmup_s = time.perf_counter() - t
        torch.cuda.reset_peak_memory_stats()
        times, tokens = [], 0
        start = time.perf_counter()
        last = start
        for i in range(steps):
            loss, norm, n, _ = recipe._optimizer_step()
            step_losses.append(loss)
            recipe.step += 1
            tokens += n
            if (i + 1) % 25 == 0 or i + 1 == steps:
                float(loss)  # waits for the GPU, as a log step does
                now = time.perf_counter()
                times.append((now - last) / (25 if (i + 1) % 25 == 0 else (i + 1) % 25))
                last = now
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
        losses = [float(x) for x in step_losses]
        peak = torch.cuda.max_memory_allocated()
        reserved = torch.cuda.max_memory_reserved()  # CUDA graphs keep their memory pool reserved between replays
        graphs = recipe._graphs.recorded if recipe._graphs is not None else None
        t = time.perf_counter()
        recipe._evaluate()
        eval_s = time.perf_counter() - t
        t = time.perf_counter()
        recipe._save_checkpoint(recipe._snapshot())
        ckpt_s = time.perf_counter() - t
        picks = recipe.picks
        recipe.cleanup()
    base = plan["baseParameters"]  # exact, from the weightless skeleton (a 4-bit tensor's numel counts bytes)
    step_s = wall / steps
    flops_per_token = 4 * base  # frozen base: forward 2N + input gradients 2N; recompute and LoRA not counted
    print(json.dumps({
        "stack": "engine", "variant": " ".join([a.variant, *a.set, *a.inductor, *(["tf32"] if a.tf32 else []),
                                              *(["dense-base"] if a.dense_base else [])]),
        "device": torch.cuda.get_device_name(0), "steps": steps,
        "data": summary, "picks": picks, "step_s_mean": step_s, "step_s_median": statistics.median(times),
        "tokens_per_step": tokens / steps, "tokens_per_s": tokens / wall, "projected_1000_steps_s": 1000 * step_s,
        "peak_bytes": peak, "peak_reserved_bytes": reserved, "cuda_graphs_recorded": graphs, "plan_peak_bytes": plan["peakBytes"], "plan_picks": plan["picks"],
        "mfu": tokens / wall * flops_per_token / PEAK_FLOPS, "data_s": data_s, "load_s": load_s, "warmup_s": warmup_s, "warmup_steps": a.warmup,
        "eval_s": eval_s,
        "eval_records": cfg["train"]["eval_batches"] * (picks or {}).get("microBatchSize", 1),
        "checkpoint_s": ckpt_s, "losses": losses,
    }))


if __name__ == "__main__":
    main()
