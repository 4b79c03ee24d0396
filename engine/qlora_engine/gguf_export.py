"""A run's adapter merged into its base model and written as one GGUF file for llama.cpp and its kin (llama and phi2
families), f16 or q8_0.

Written with the `gguf` package as llama.cpp's convert_hf_to_gguf.py writes these architectures: its tensor names
(gguf's own name map), its metadata keys, llama's q/k rows permuted to GGML's rotary layout, 1-D tensors (norms,
biases) in f32, a tied output matrix left out (llama.cpp reuses token_embd), and the tokenizer as a GPT-2 style BPE
(tokens, types, merges, special ids, chat template). The file is written beside its destination and renamed into
place: a crash leaves nothing half-written.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from .errors import BadConfig, InvalidParams, WriteFailed

QUANTS = ("f16", "q8_0")
ARCHITECTURES = {"llama": "llama", "phi": "phi2"}  # transformers model_type -> GGUF architecture
Progress = Callable[[str, Optional[float]], None]


def check_target(out: Path, quant: str) -> None:
    if quant not in QUANTS:
        raise InvalidParams(f"quant must be one of {', '.join(QUANTS)}, got {quant!r}", field="quant")
    if out.exists():
        raise InvalidParams(f"{out} already exists; export into a new file (nothing is overwritten)",
                            file=str(out), field="out")
    if not out.parent.is_dir():
        raise InvalidParams(f"{out.parent} is not a folder", file=str(out), field="out")


def write_gguf(model: Any, tokenizer: Any, out: Path, quant: str, progress: Progress) -> Dict[str, Any]:
    """The merged (unquantized) `model` and its tokenizer as the GGUF file `out`."""
    import gguf
    config = model.config
    arch = ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise BadConfig(f"GGUF export supports the {', '.join(sorted(ARCHITECTURES))} model families; this model is "
                        f"{config.model_type!r} (export --merged writes a transformers folder instead)", field="model")
    staging = out.parent / f".{out.name}.exporting-{os.getpid()}"
    try:
        writer = gguf.GGUFWriter(str(staging), arch)
        _metadata(writer, config, arch, quant)
        _tokenizer(writer, tokenizer, config)
        tensors = _tensors(model, config, arch)
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.PHI2,
                                         config.num_hidden_layers)
        for index, (name, tensor) in enumerate(tensors):
            target = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if target is None:
                raise BadConfig(f"GGUF export: no llama.cpp name for tensor {name!r}", field="model")
            data, qtype = _encode(tensor, quant)
            writer.add_tensor(target, data, raw_dtype=qtype)
            progress("encoding tensors", (index + 1) / len(tensors))
        progress("writing", None)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(staging, out)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise WriteFailed(f"could not write the GGUF file {out}: {exc.strerror or exc}", file=str(out)) from None
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return {"architecture": arch, "files": {out.name: out.stat().st_size}}


def _metadata(writer: Any, config: Any, arch: str, quant: str) -> None:
    import gguf
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)
    rope = _rope_parameters(config)
    if rope.get("rope_type", "default") not in ("default", None):
        raise BadConfig(f"GGUF export: rope scaling {rope.get('rope_type')!r} is not supported yet", field="model")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    writer.add_rope_freq_base(float(theta))
    if arch == "llama":
        writer.add_vocab_size(config.vocab_size)
        writer.add_rope_dimension_count(head_dim)
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    else:
        partial = rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0))
        writer.add_rope_dimension_count(int(partial * head_dim))
        writer.add_layer_norm_eps(config.layer_norm_eps)
        writer.add_add_bos_token(False)


def _rope_parameters(config: Any) -> Dict[str, Any]:
    # transformers 5 gathers rope settings in config.rope_parameters; older versions kept rope_scaling
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return dict(params)


def _pre_tokenizer(spec: Any) -> str:
    """llama.cpp's name for a byte-level BPE's pre-tokenizer (its regexes), from tokenizer.json's spec."""
    if isinstance(spec, dict) and spec.get("type") == "ByteLevel":
        return "gpt2"
    if isinstance(spec, dict) and spec.get("type") == "Sequence":
        parts = [p.get("type") for p in spec.get("pretokenizers", [])]
        digits = [p for p in spec["pretokenizers"] if p.get("type") == "Digits"]
        if parts == ["Digits", "ByteLevel"] and digits[0].get("individual_digits"):
            return "smollm"
    raise BadConfig(f"GGUF export: this tokenizer's pre-tokenizer ({json.dumps(spec)[:120]}) has no llama.cpp "
                    "equivalent known here", field="model")


def _tokenizer(writer: Any, tokenizer: Any, config: Any) -> None:
    import gguf
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise BadConfig("GGUF export needs the model's fast tokenizer (tokenizer.json)", field="model")
    spec = json.loads(backend.to_str())
    if spec.get("model", {}).get("type") != "BPE":
        raise BadConfig(f"GGUF export writes byte-level BPE tokenizers; this one is {spec.get('model', {}).get('type')}",
                        field="model")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(spec.get("pre_tokenizer")))
    vocab = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    special = set(tokenizer.all_special_tokens)
    size = max(config.vocab_size, max(vocab) + 1)
    tokens: List[str] = []
    types: List[int] = []
    for i in range(size):
        token = vocab.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in special or (token in added and token.startswith("<"))
                         else gguf.TokenType.USER_DEFINED if token in added else gguf.TokenType.NORMAL)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as folder:  # SpecialVocab reads merges, special ids and the chat template
        tokenizer.save_pretrained(folder)
        gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer)


def _tensors(model: Any, config: Any, arch: str) -> List[Tuple[str, torch.Tensor]]:
    state = model.state_dict()
    tied = bool(getattr(config, "tie_word_embeddings", False))
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    out = []
    for name, tensor in state.items():
        if tied and name == "lm_head.weight":
            continue  # llama.cpp uses token_embd when output is absent
        if name.endswith("rotary_emb.inv_freq"):
            continue
        if arch == "llama" and name.endswith("self_attn.q_proj.weight"):
            tensor = _permute(tensor, heads)
        elif arch == "llama" and name.endswith("self_attn.k_proj.weight"):
            tensor = _permute(tensor, kv_heads)
        out.append((name, tensor))
    return out


def _permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """transformers' rotate-half rows -> GGML's interleaved rotary rows (convert_hf_to_gguf.py's LlamaModel.permute)."""
    return (weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _encode(tensor: torch.Tensor, quant: str) -> Tuple[Any, Any]:
    import gguf
    data = tensor.detach().to(torch.float32).cpu().numpy()
    if data.ndim <= 1:
        return data, gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and data.shape[-1] % 32 == 0:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return data.astype("float16"), gguf.GGMLQuantizationType.F16
