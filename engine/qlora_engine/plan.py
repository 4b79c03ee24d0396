"""train/plan: parameter counts and an estimate of peak GPU memory, from the config alone (no weights loaded).

The architecture is built on the meta device from AutoConfig, so base and LoRA parameter counts are exact
(LoRA adds r * (in + out) per targeted linear layer, bias "none"). Memory is the sum of these terms (bytes);
T = micro_batch_size * max_length tokens (the worst case of a batch), L layers, h hidden, i intermediate,
V vocabulary, c = compute dtype size, a = activation size (4 when quantized: prepare_model_for_kbit_training
upcasts embeddings and norms to fp32, so the residual stream is fp32; else c):

  quantized linear weights   nf4/fp4: 0.5 B/param + one fp32 absmax per 64-block (4/64 B/param);
                             double quant: the absmax in 8 bit + one fp32 per 256 of them (1/64 + 4/16384 B/param)
                             int8: 1 B/param + one fp32 scale per output row; none: c B/param (all linears)
  other base weights         embeddings, lm_head (bitsandbytes never quantizes it), norms, biases:
                             4 B/param when quantized (upcast by k-bit preparation), else c
  LoRA weights/grads/optim   4 + 4 B/param (peft keeps adapters in fp32) + AdamW 8 B/param or paged 8-bit 2 B/param
  activations                per layer and token: a * (5h + 4i) (norm input, q, k, v, attention output; the
                             activation function's four saved tensors) + 5 B per input feature of each LoRA layer
                             (its fp32 input copy after dropout + the dropout mask; 4 B without dropout).
                             Saved through the forward: with gradient checkpointing L * a * h (each layer's
                             input), without L * one layer.
  logits and loss            T * V * 4 * 3 (the loss's fp32 log-softmax, its gradient and the logits' gradient;
                             the logits themselves are freed before backward)
  packing mask               T * max_length * a (the 4D block-diagonal mask), only with packing
  CUDA/allocator overhead    2 * the largest linear weight dequantized to c (bitsandbytes' transient buffers)
                             + 64 MiB (cuBLAS workspaces) + 5% of everything above (allocator rounding)

The peak is at the loss (saved activations + logits and loss) or later in backward, when the logits are gone and
one layer's gradients (with checkpointing also the recomputed layer: 2 layers) are alive; the larger phase
counts, and the activations term carries the backward phase's excess over the logits, if any.

Assumed: CUDA sdpa (flash/memory-efficient kernels keep no S x S score matrix), the peak at a step after the
first (optimizer state exists), and everything on one GPU. The 5% and the paged optimizer's state (CUDA
managed memory) are not seen by torch.cuda.max_memory_allocated; nvidia-smi also shows the CUDA context.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from .config import Config, parse_config
from .env import gpu_devices
from .model import check_model, compute_dtype, linear_modules, skeleton

MiB = 1 << 20
GiB = 1 << 30


def _fmt(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.1f} MiB"


def _dtype_bytes(dtype: torch.dtype) -> int:
    return torch.tensor([], dtype=dtype).element_size()


def _dims(auto_config: Any) -> Dict[str, int]:
    get = lambda *names, default=None: next(  # noqa: E731
        (getattr(auto_config, n) for n in names if getattr(auto_config, n, None) is not None), default)
    hidden = get("hidden_size", "n_embd", "d_model")
    return {"layers": get("num_hidden_layers", "n_layer", "num_layers"), "hidden": hidden,
            "intermediate": get("intermediate_size", "n_inner", "ffn_dim", default=None) or 4 * hidden,
            "vocab": get("vocab_size")}


def _plan_dtype(config: Config) -> torch.dtype:
    # Planning may happen on a machine without the GPU; 4-bit implies one, assume bf16 there.
    if config.compute_dtype == "auto" and config.quantized and not torch.cuda.is_available():
        return torch.bfloat16
    return compute_dtype(config)


def estimate(raw_config: Any) -> Dict[str, Any]:
    """TrainPlanResult of protocol/engine.ts."""
    config = parse_config(raw_config)
    _, auto_config = check_model(config)  # ModelNotFound / BadConfig(target_modules); no GPU needed
    model = skeleton(auto_config, config.trust_remote_code)
    dims = _dims(auto_config)
    c = _dtype_bytes(_plan_dtype(config))
    a = 4 if config.quantized else c
    tokens = config.train.micro_batch_size * config.max_length

    base_params = sum(p.numel() for p in model.parameters())
    output = model.get_output_embeddings()
    linears = [(n, m) for n, m in linear_modules(model) if m is not output]
    targets = [(n, m) for n, m in linear_modules(model)
               if any(n == t or n.endswith("." + t) for t in config.lora.target_modules)]

    def shape(module: torch.nn.Module) -> tuple:
        w = module.weight  # Linear: (out, in); Conv1D: (in, out)
        return (w.shape[1], w.shape[0]) if isinstance(module, torch.nn.Linear) else (w.shape[0], w.shape[1])

    lora_params = sum(config.lora.r * sum(shape(m)) for _, m in targets)
    quant_params = sum(m.weight.numel() for _, m in linears)
    other_params = base_params - quant_params

    terms: List[Dict[str, Any]] = []

    def term(name: str, value: float, detail: str) -> None:
        terms.append({"name": name, "bytes": int(value), "detail": detail})

    q = config.quantization
    if q in ("nf4", "fp4"):
        per = 0.5 + (1 / 64 + 4 / (64 * 256) if config.double_quant else 4 / 64)
        term("quantized linear weights", quant_params * per,
             f"{quant_params:,} params x {per:.4f} B ({q}: 4 bit + absmax per 64-block"
             f"{', double-quantized' if config.double_quant else ' in fp32'})")
    elif q == "int8":
        rows = sum(shape(m)[1] for _, m in linears)
        term("quantized linear weights", quant_params + 4 * rows, f"{quant_params:,} params x 1 B + fp32 row scales")
    else:
        term("linear weights", quant_params * c, f"{quant_params:,} params x {c} B (not quantized)")
    other_bytes = 4 if config.quantized else c
    term("other base weights", other_params * other_bytes,
         f"{other_params:,} params (embeddings, lm_head, norms, biases) x {other_bytes} B")
    optim = 2 if config.train.optimizer == "paged_adamw_8bit" else 8
    term("LoRA weights, gradients, optimizer", lora_params * (8 + optim),
         f"{lora_params:,} params x (4 B weight + 4 B grad + {optim} B {config.train.optimizer} state)")

    per_feature = 5 if config.lora.dropout > 0 else 4
    layer_lora = per_feature * sum(shape(m)[0] for _, m in targets) / max(1, dims["layers"])
    layer = tokens * (a * (5 * dims["hidden"] + 4 * dims["intermediate"]) + layer_lora)
    logits = tokens * dims["vocab"] * 4 * 3
    term("logits and loss", logits, f"{tokens:,} tokens x {dims['vocab']:,} vocab x 4 B x 3 (log-softmax, its "
                                    "gradient, logits gradient)")
    if config.packing:
        term("packing mask", tokens * config.max_length * a, "4D block-diagonal attention mask")
    fixed = sum(t["bytes"] for t in terms)
    largest = max((m.weight.numel() for _, m in linears), default=0)

    def activations(checkpointing: bool) -> float:
        saved = tokens * dims["layers"] * a * dims["hidden"] if checkpointing else dims["layers"] * layer
        backward = (2 if checkpointing else 1) * layer
        return saved + max(0.0, backward - logits)

    def overhead(act: float) -> float:
        return 2 * largest * c + 64 * MiB + 0.05 * (fixed + act)

    act_ckpt, act_full = activations(True), activations(False)
    with_ckpt = fixed + act_ckpt + overhead(act_ckpt)
    without = fixed + act_full + overhead(act_full)
    checkpointing = config.train.gradient_checkpointing
    act = act_ckpt if checkpointing else act_full
    if checkpointing:
        term("activations (gradient checkpointing)", act,
             f"{dims['layers']} saved layer inputs, {tokens:,} tokens; the recomputed layer and its gradients "
             f"({_fmt(2 * layer)}) reuse the logits' memory in backward ({_fmt(act_full)} without checkpointing)")
    else:
        term("activations", act, f"{dims['layers']} layers x {_fmt(layer)} for {tokens:,} tokens "
                                 f"({_fmt(act_ckpt)} with gradient checkpointing)")
    term("CUDA/allocator overhead", overhead(act), "dequantization buffers, cuBLAS workspace, 5% allocator rounding")
    terms.sort(key=lambda t: -t["bytes"])

    peak = int(with_ckpt if checkpointing else without)
    devices = gpu_devices()
    device: Optional[Dict[str, Any]] = devices[0] if devices else None
    return {
        "baseParameters": int(base_params),
        "loraParameters": int(lora_params),
        "peakBytes": peak,
        "peakBytesWithCheckpointing": int(with_ckpt),
        "peakBytesWithoutCheckpointing": int(without),
        "terms": terms,
        "device": device,
        "fits": None if device is None else peak <= device["freeMemory"],
    }
