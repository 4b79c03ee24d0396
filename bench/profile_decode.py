"""Where a decode step's time goes (issue 11): the engine's generate on Phi-2 shapes (random weights, NF4 + a
random adapter, merged into dense weights as the engine picks), batch 1 and 16, per variant: `compiled` (the
default: decoder layers compiled before capture, one-row products as decode.matvec), `cublas` (the same with
cuBLAS's GEMVs at one row), `static` (compiled with static shapes: one compilation per batch shape), `uncompiled`,
`4bit` (bitsandbytes' kernels, uncompiled), under torch.profiler.
Prints per variant: the first call (compiling and capturing), the prefill + first token and the later steps' wall
time, GPU kernel ms and kernels per token, and the top kernels.

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
from qlora_engine import decode, decode_layers  # noqa: E402
from qlora_engine.generate import Generator  # noqa: E402

STEPS = 32
VARIANTS = {"compiled": dict(dense=True, compile=True), "static": dict(dense=True, compile=True),
            "cublas": dict(dense=True, compile=True),
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
        decode.MATVEC = variant != "cublas"
        torch._dynamo.reset()  # each variant compiles its own code: its first call includes the compilation
        if variant == "static":
            decode_layers._compiled = functools.lru_cache(maxsize=2)(
                lambda one_row=False: torch.compile(decode_layers._one_row_forward if one_row else
                                                    decode_layers._layer_forward, dynamic=False,
                                                    options=decode_layers.OPTIONS if one_row else None))
        for batch in map(int, a.batches.split(",")):
            params = {"config": config, "adapter": a.adapter, "records": [{"dialogue": d} for d in texts[:batch]],
                      "maxNewTokens": STEPS, "batchSize": batch}
            t0 = time.perf_counter()
            generator.generate(params)  # capture
            first = time.perf_counter() - t0
            wall = _median_s(lambda: generator.generate(params))
            prefill = _median_s(lambda: generator.generate({**params, "maxNewTokens": 1}))
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                generator.generate(params)
                torch.cuda.synchronize()
            kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            total = sum(e.device_time for e in kernels) / 1000  # ms
            by_name = Counter()
            for e in kernels:
                by_name[e.name[:90]] += e.device_time / 1000
            print(f"## {variant} batch={batch}: first call {first:.1f} s, prefill + first token {prefill * 1000:.1f} ms, "
                  f"then {(wall - prefill) / (STEPS - 1) * 1000:.2f} ms/step wall; kernels {total / STEPS:.2f} ms/token, "
                  f"{len(kernels) / STEPS:.0f} kernels/token (prefill included)", flush=True)
            for name, ms in by_name.most_common(10):
                print(f"   {ms / STEPS:7.3f} ms/step  {name}")


def _median_s(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[repeats // 2]


if __name__ == "__main__":
    main()
