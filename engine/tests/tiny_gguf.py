"""Tiny GGUF files for the import tests: a 2-layer llama with Phi-2's GPT-2 BPE vocabulary and random weights (Q8_0
and F32 tensors), the same file cut short, and one whose architecture transformers cannot read.

    python engine/tests/tiny_gguf.py OUT_DIR    writes good.gguf, truncated.gguf, unsupported-arch.gguf
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 64, 128, 2, 4, 2


def _tokenizer():
    data = json.loads((REPO / "samples" / "models" / "phi-2" / "tokenizer.json").read_text("utf-8"))
    vocab = data["model"]["vocab"]
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return tokens, merges


def write(path: Path, architecture: str = "llama", seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    tokens, merges = _tokenizer()
    w = gguf.GGUFWriter(str(path), architecture)
    w.add_name("tiny-llama-test")
    w.add_block_count(LAYERS)
    w.add_context_length(512)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
    w.add_token_merges(merges)
    w.add_bos_token_id(50256)
    w.add_eos_token_id(50256)

    def add(name: str, shape, quantize: bool = True) -> None:
        values = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if quantize:
            w.add_tensor(name, gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, values)

    head = HIDDEN // HEADS
    add("token_embd.weight", (len(tokens), HIDDEN))
    for i in range(LAYERS):
        add(f"blk.{i}.attn_norm.weight", (HIDDEN,), quantize=False)
        add(f"blk.{i}.attn_q.weight", (HIDDEN, HIDDEN))
        add(f"blk.{i}.attn_k.weight", (KV_HEADS * head, HIDDEN))
        add(f"blk.{i}.attn_v.weight", (KV_HEADS * head, HIDDEN))
        add(f"blk.{i}.attn_output.weight", (HIDDEN, HIDDEN))
        add(f"blk.{i}.ffn_norm.weight", (HIDDEN,), quantize=False)
        add(f"blk.{i}.ffn_gate.weight", (FFN, HIDDEN))
        add(f"blk.{i}.ffn_up.weight", (FFN, HIDDEN))
        add(f"blk.{i}.ffn_down.weight", (HIDDEN, FFN))
    add("output_norm.weight", (HIDDEN,), quantize=False)
    add("output.weight", (len(tokens), HIDDEN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    good = write(out / "good.gguf")
    data = good.read_bytes()
    (out / "truncated.gguf").write_bytes(data[: len(data) // 2])
    write(out / "unsupported-arch.gguf", architecture="rwkv6")


if __name__ == "__main__":
    write_all(Path(sys.argv[1]))
