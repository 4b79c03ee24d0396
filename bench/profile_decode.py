"""Where a decode step's time goes (issue 11): the engine's generate on Phi-2 shapes (random weights, NF4 + a
random adapter, merged into dense weights as the engine picks), batch 1 and 16, per variant: `compiled` (the
default: decoder layers compiled before capture), `static` (the same compiled with static shapes: one compilation
per batch shape), `uncompiled`, `4bit` (bitsandbytes' kernels, uncompiled), under torch.profiler.
Prints per variant: wall ms per token, GPU kernel ms per step, kernels per step, and the top kernels.

    python bench/profile_decode.py --model /tmp/phi2-random --adapter /tmp/bench-adapter [--variants compiled,static]
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "engine"))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from generate_bench import dialogues, engine_config  # noqa: E402
from qlora_engine import decode_layers  # noqa: E402
from qlora_engine.generate import Generator  # noqa: E402

STEPS = 32
VARIANTS = {"compiled": dict(dense=True, compile=True), "static": dict(dense=True, compile=True),
            "uncompiled": dict(dense=True, compile=False), "4bit": dict(dense=False, compile=False)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", default="/tmp/bench-adapter")
    p.add_argument("--data", default=str(ROOT / "samples/dialogsum/test.jsonl"))
    p.add_argument("--variants", default="compiled,uncompiled")
    p.add_argument("--batches", default="1,16")
    a = p.parse_args()
    generator = Generator()
    config = engine_config(str(Path(a.model).resolve()), "nf4")
    generator.generate({"config": config, "adapter": a.adapter, "records": [{"dialogue": "Hi."}], "maxNewTokens": 1})
    texts = dialogues(a.data, generator._tokenizer, 16)
    for variant in a.variants.split(","):
        generator._graphs.clear()
        for key, value in VARIANTS[variant].items():
            setattr(generator._graphs, key, value)
        if variant == "static":
            torch._dynamo.reset()
            decode_layers._compiled = functools.lru_cache(maxsize=1)(
                lambda: torch.compile(decode_layers._layer_forward, dynamic=False))
        for batch in map(int, a.batches.split(",")):
            params = {"config": config, "adapter": a.adapter, "records": [{"dialogue": d} for d in texts[:batch]],
                      "maxNewTokens": STEPS, "batchSize": batch}
            t0 = time.perf_counter()
            generator.generate(params)  # capture
            first = time.perf_counter() - t0
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            generator.generate(params)
            torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                generator.generate(params)
                torch.cuda.synchronize()
            kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            total = sum(e.device_time for e in kernels) / 1000  # ms
            by_name = Counter()
            for e in kernels:
                by_name[e.name[:90]] += e.device_time / 1000
            print(f"## {variant} batch={batch}: first call {first:.1f} s, {wall / STEPS * 1000:.2f} ms/token wall "
                  f"(prefill included), kernels {total / STEPS:.2f} ms/step, {len(kernels) / STEPS:.0f} kernels/step",
                  flush=True)
            for name, ms in by_name.most_common(10):
                print(f"   {ms / STEPS:7.3f} ms/step  {name}")


if __name__ == "__main__":
    main()
