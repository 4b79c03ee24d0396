"""QLoRA Studio's engine on the same workload as bench/reference_stack.py, in-process through the Recipe API.

Prints one JSON line: step times, tokens/s, peak GPU memory, the plan estimate for the same config, and losses.

    python bench/engine_stack.py --model /tmp/phi2-random --variant tutorial --max-steps 30
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
from qlora_engine.events import Events  # noqa: E402
from qlora_engine.recipe import Recipe  # noqa: E402

SAMPLES = ROOT / "samples/dialogsum"


def config_for(variant: str, model: str, max_steps: int, train: str, validation: str) -> dict:
    base = json.loads((ROOT / "schemas/finetune.schema.json").read_text())
    cfg = {
        "model": model, "trust_remote_code": False, "quantization": "nf4", "double_quant": False,
        "compute_dtype": "float16",
        "lora": {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "dense"]},
        "data": {"train": train, "validation": validation, "test": None, "validation_split": 0.05},
        "template": str(ROOT / "bench/tutorial.prompt.yaml"), "max_length": 2048, "loss_on": "all", "packing": False,
        "train": {k: v.get("default") for k, v in base["properties"]["train"]["properties"].items()},
    }
    cfg["train"].update(max_steps=max_steps, micro_batch_size=1, gradient_accumulation=4, learning_rate=2e-4,
                        lr_scheduler="linear", warmup_steps=1, optimizer="paged_adamw_8bit",
                        gradient_checkpointing=True, eval_every=25, eval_batches=0, save_every=25, log_every=1)
    if variant == "defaults":  # QLoRA Studio's own defaults on the same data: bf16, response-only loss, packing
        cfg.update(compute_dtype="auto", loss_on="response", packing=True,
                   template=str(SAMPLES / "summarize.prompt.yaml"))
    elif variant == "learn":  # a small model that learns DialogSum: loss must fall
        cfg.update(compute_dtype="auto", loss_on="response", template=str(SAMPLES / "summarize.prompt.yaml"),
                   max_length=512)
        cfg["lora"].update(r=64, alpha=128)
        cfg["train"].update(micro_batch_size=8, gradient_accumulation=1, learning_rate=1e-3, lr_scheduler="cosine",
                            warmup_steps=10, eval_every=50, save_every=0)
    elif variant != "tutorial":
        raise SystemExit(f"unknown variant {variant}")
    return cfg


class Recorder(Events):
    def __init__(self) -> None:
        self.progress_events: list[dict] = []
        self.evals: list[dict] = []
        self.ended: dict | None = None

    def stage(self, stage, message):
        print(f"[{stage}] {message}", file=sys.stderr)

    def progress(self, params):
        self.progress_events.append(params)

    def eval(self, params):
        self.evals.append(params)

    def checkpoint(self, params):
        pass

    def end(self, params):
        self.ended = params


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--variant", default="tutorial")
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--train", default=str(SAMPLES / "train.jsonl"))
    p.add_argument("--validation", default=str(SAMPLES / "validation.jsonl"))
    a = p.parse_args()
    cfg = config_for(a.variant, str(Path(a.model).resolve()), a.max_steps, str(Path(a.train).resolve()),
                     str(Path(a.validation).resolve()))
    plan = estimate(cfg)
    events = Recorder()
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Recipe(cfg, Path(tmp) / "run", events=events)
        summary = recipe.validate()
        t0 = time.perf_counter()
        end = recipe.run()
        wall = time.perf_counter() - t0
    prog = events.progress_events
    steps = [e["elapsedSeconds"] for e in prog]
    step_times = [b - a for a, b in zip(steps, steps[1:])][2:]
    print(json.dumps({
        "stack": "engine", "variant": a.variant, "device": torch.cuda.get_device_name(0), "status": end["status"],
        "error": end.get("error"), "data": summary, "steps": a.max_steps, "wall_s": wall,
        "step_s_median": statistics.median(step_times) if step_times else None,
        # steady state, defined as for the reference: mean tokens per step over the median step time
        "train_tokens": prog[-1]["tokens"] if prog else None,
        "tokens_per_s": prog[-1]["tokens"] / len(prog) / statistics.median(step_times) if step_times else None,
        "train_wall_s": prog[-1]["elapsedSeconds"] if prog else None,
        "peak_bytes": torch.cuda.max_memory_allocated(), "plan_peak_bytes": plan["peakBytes"],
        "plan_terms": plan["terms"][:4], "losses": [e["loss"] for e in prog],
        "eval_losses": [e["evalLoss"] for e in events.evals],
    }))


if __name__ == "__main__":
    main()
