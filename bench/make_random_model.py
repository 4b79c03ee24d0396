"""Write a model folder with Phi-2's real config and tokenizer and random weights (no Phi-2 weights are reachable).

Speed and memory depend on shapes, not values, so both stacks load this folder through the real
`from_pretrained` + BitsAndBytesConfig path. `--shape tiny|small|phi-2` picks the size.

    python bench/make_random_model.py --shape phi-2 --out /tmp/phi2-random
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import PhiConfig, PhiForCausalLM

ROOT = Path(__file__).resolve().parents[1]
PHI2 = ROOT / "samples/models/phi-2"
SHAPES = {
    "phi-2": {},
    # Small enough to learn DialogSum quickly on a GPU, big enough that 4-bit kernels do real work.
    # head_dim 80 as in Phi-2, so the partial rotary dimension (0.4 × head_dim) stays an even integer.
    "small": dict(hidden_size=960, intermediate_size=3840, num_hidden_layers=8, num_attention_heads=12,
                  num_key_value_heads=12),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", choices=sorted(SHAPES), default="phi-2")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    raw = json.loads((PHI2 / "config.json").read_text())
    for key in ("auto_map", "_name_or_path", "transformers_version", "torch_dtype"):
        raw.pop(key, None)
    config = PhiConfig(**{**raw, **SHAPES[a.shape]})
    torch.manual_seed(a.seed)
    with torch.device("meta"):
        model = PhiForCausalLM(config)
    model = model.to_empty(device="cuda").to(torch.bfloat16)
    with torch.no_grad():  # random normal weights on the GPU (fast); norms at 1, biases at 0
        for name, t in model.state_dict().items():
            if "layernorm" in name or name.endswith("final_layernorm.weight"):
                t.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                t.zero_()
            else:
                t.normal_(0.0, 0.02)
    model.save_pretrained(a.out, safe_serialization=True)
    for f in PHI2.iterdir():
        if f.name != "config.json":
            shutil.copy(f, a.out / f.name)
    n = sum(t.numel() for t in model.parameters())
    print(f"{a.shape}: {n / 1e9:.3f}B parameters -> {a.out}")


if __name__ == "__main__":
    main()
