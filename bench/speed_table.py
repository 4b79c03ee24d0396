"""The training-speed table of docs/performance.md from bench/train_speed.sh's JSON lines.

    python bench/speed_table.py OUT/*.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

GIB = 1 << 30
PHI2_PARAMS = 2.7794e9  # Phi-2's parameter count (embeddings and lm_head included), as the engine counts it
PEAK_FLOPS = 790e12  # bf16 dense rate measured on an H200 here


def rows(paths):
    for p in paths:
        for line in Path(p).read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "stack" in row:
                yield row


def main(paths) -> None:
    found = list(rows(paths))
    if not found:
        raise SystemExit("no results")
    print(f"card: {found[0].get('device')}\n")
    print("| stack | variant | tokens / step | s / step | tokens / s | 1000 steps (projected) | peak GPU memory | "
          "plan | MFU | mean loss, first 20 steps | load · compile · eval · checkpoint |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in found:
        step = r.get("step_s_mean") or r.get("step_s_median")
        tps = r.get("tokens_per_s")
        per_step = r.get("tokens_per_step") or (4 * r["tokens_per_record"] if "tokens_per_record" in r else None)
        losses = r.get("losses") or []
        first = losses[:20]
        loss = f"{sum(first) / len(first):.3f} ({len(first)})" if first else "–"
        plan = r.get("plan_peak_bytes")
        extra = "–"
        if r["stack"] == "engine":
            compile_s = max(0.0, r.get("warmup_s", 0.0) - r.get("warmup_steps", 0) * step)
            extra = f"{r['load_s']:.1f} · {compile_s:.0f} · {r['eval_s']:.2f} ({r['eval_records']} rec) · {r['checkpoint_s']:.2f} s"
        elif r["stack"] == "reference":
            extra = f"{r.get('load_s', 0):.1f} s · – · – · –"
        # 4N FLOPs per trained token (frozen base: forward + input gradients), N = Phi-2's parameters; recomputation
        # under checkpointing is not useful work and not counted (older engine JSON lines miscounted N).
        mfu = tps * 4 * PHI2_PARAMS / PEAK_FLOPS if tps else None
        projected = f"{1000 * step:.0f} s" if step and r["stack"] != "stock" else "–"
        name = r.get("variant", "")
        if r.get("picks"):
            p = r["picks"]
            name += f" (mb {p['microBatchSize']}, ckpt {'on' if p['gradientCheckpointing'] else 'off'}, ≤{p['tokensPerPass']:,} tok/pass)"
        if r.get("cuda_graphs_recorded"):
            name += f", {r['cuda_graphs_recorded']} CUDA graphs"
        # CUDA graphs keep their memory pool reserved between replays: what the card must have free
        reserved = f" ({r['peak_reserved_bytes'] / GIB:.1f} reserved)" if r.get("peak_reserved_bytes") else ""
        print(f"| {r['stack']} | {name} | {per_step or 0:,.0f} | {step:.3f} | {tps:,.0f} | {projected} | "
              f"{r['peak_bytes'] / GIB:.2f} GiB{reserved} | {'–' if plan is None else f'{plan / GIB:.2f} GiB'} | "
              f"{'–' if mfu is None else f'{mfu:.1%}'} | {loss} | {extra} |")


if __name__ == "__main__":
    main(sys.argv[1:])
