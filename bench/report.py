"""Turn the JSON lines of one GPU benchmark run into the markdown table for docs/performance.md.

    python bench/report.py results/*.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

GIB = 1024**3


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def main(paths: list[str]) -> None:
    rows = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a library's own output on stdout
            if isinstance(row, dict) and "stack" in row and "steps" in row:
                rows.append(row)
    if not rows:
        raise SystemExit("no results")
    print(f"card: {rows[0].get('device')}\n")
    print("| stack | workload | s / step (median) | tokens/s | training wall (eval + save incl.) | peak GPU memory | plan estimate | first → last loss |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "reference (Trainer + peft + bnb)" if r["stack"] == "reference" else f"QLoRA Studio engine ({r['variant']})"
        losses = r.get("losses") or []
        loss = f"{losses[0]:.3f} → {losses[-1]:.3f}" if losses else "–"
        plan = r.get("plan_peak_bytes")
        status = "" if r.get("status", "completed") == "completed" else f" **{r.get('status')}: {r.get('error')}**"
        print(f"| {name}{status} | {r['steps']} steps | {fmt(r.get('step_s_median'), '.3f')} | "
              f"{fmt(r.get('tokens_per_s'), ',.0f')} | {fmt(r.get('train_wall_s'), '.1f')} s | {r['peak_bytes'] / GIB:.2f} GiB | "
              f"{'–' if plan is None else f'{plan / GIB:.2f} GiB'} | {loss} |")


if __name__ == "__main__":
    main(sys.argv[1:])
