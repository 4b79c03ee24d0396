"""Profile the engine's optimizer steps with torch.profiler: where a step's time goes (host vs device).

    python bench/profile_step.py --model /tmp/phi2-random --variant tutorial --steps 6 [--train FILE]

Variants come from bench/engine_speed.py's VARIANTS. Warm-up steps run first; then `--steps` steps are traced.
Prints: wall time per step, the sum of device-kernel time per step (so the idle fraction of the GPU), and the top
operators by self CPU time and by device time.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "engine"))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from engine_speed import ROOT as _, VARIANTS, merge, tutorial_config  # noqa: E402
from qlora_engine.recipe import Recipe  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--variant", default="tutorial")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--train", default=str(ROOT / "samples/dialogsum/train.jsonl"))
    p.add_argument("--validation", default=str(ROOT / "samples/dialogsum/validation.jsonl"))
    p.add_argument("--set", action="append", default=[], help="train.key=value overrides (ints/bools/strings)")
    p.add_argument("--trace", help="write a chrome trace here")
    a = p.parse_args()
    cfg = merge(tutorial_config(str(Path(a.model).resolve()), str(Path(a.train).resolve()),
                                str(Path(a.validation).resolve())), VARIANTS[a.variant][0])
    if cfg["template"] == "SAMPLE":
        cfg["template"] = str(ROOT / "samples/dialogsum/summarize.prompt.yaml")
    for item in a.set:
        key, value = item.split("=", 1)
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = {"true": True, "false": False}.get(value, int(value) if value.lstrip("-").isdigit() else value)
    if a.set:
        print("overrides:", a.set)
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Recipe(cfg, Path(tmp) / "run")
        recipe.validate()
        recipe.setup()
        recipe.model.train()
        for _ in range(a.warmup):
            recipe._optimizer_step()
        torch.cuda.synchronize()
        tokens = 0
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            for _ in range(a.steps):
                _, _, n, _ = recipe._optimizer_step()
                tokens += n
            torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) / a.steps
        events = prof.key_averages()
        # Kernel time only (device events that are not operators), so nothing is counted twice.
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
        device_us = sum(e.time_range.elapsed_us() for e in kernels) / a.steps
        print(f"\n## {a.variant} {' '.join(a.set)}: {wall * 1000:.1f} ms/step (profiled), kernels {device_us / 1000:.1f} "
              f"ms/step -> GPU busy {device_us / 1e3 / (wall * 1000):.0%}; {tokens / a.steps:.0f} tokens/step; "
              f"{len(kernels) / a.steps:.0f} kernels/step")
        print(events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
        print(events.table(sort_by="self_device_time_total", row_limit=20, max_name_column_width=60))
        if a.trace:
            prof.export_chrome_trace(a.trace)
        recipe.cleanup()


if __name__ == "__main__":
    main()
