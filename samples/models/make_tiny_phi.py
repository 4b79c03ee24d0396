"""Build a tiny Phi-architecture causal LM with random weights (fixed seed) from Phi-2's real config and tokenizer.

It shares Phi-2's tokenizer, vocabulary and layer names (q_proj, k_proj, v_proj, dense, fc1, fc2), so every code
path that serves Phi-2 serves it, but it is ~7M parameters and trains on a CPU in minutes.

    python samples/models/make_tiny_phi.py [--out samples/models/tiny-phi]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHI2 = HERE / "phi-2"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "added_tokens.json", "special_tokens_map.json"]
SHAPE = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)
SEED = 1234


def build(out: Path) -> None:
    import torch
    from transformers import PhiConfig, PhiForCausalLM

    raw = json.loads((PHI2 / "config.json").read_text())
    for key in ("auto_map", "_name_or_path", "transformers_version", "torch_dtype"):
        raw.pop(key, None)
    config = PhiConfig(**{**raw, **SHAPE})
    torch.manual_seed(SEED)
    model = PhiForCausalLM(config).to(torch.float32)
    # Write beside the target and rename, so an interrupted build never leaves a half-written model.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-phi-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in TOKENIZER_FILES:
            shutil.copy(PHI2 / name, tmp / name)
        (tmp / "README.md").write_text(
            f"Tiny Phi-architecture model, random weights (seed {SEED}), built by make_tiny_phi.py. "
            f"Shape: {json.dumps(SHAPE)}. Tokenizer: microsoft/phi-2 (MIT).\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"tiny Phi model: {n / 1e6:.1f}M parameters -> {out}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "tiny-phi")
    parser.add_argument("--force", action="store_true", help="rebuild even when the model exists")
    args = parser.parse_args(argv)
    if (args.out / "model.safetensors").exists() and not args.force:
        print(f"tiny Phi model: present at {args.out}")
        return 0
    build(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
