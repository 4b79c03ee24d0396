"""train/plan: parameter counts and an estimate of peak GPU memory, from the config alone (no weights loaded).

The architecture is built on the meta device from AutoConfig, so base and LoRA parameter counts are exact
(LoRA adds r * (in + out) per targeted linear layer, bias "none"). Memory is the sum of these terms (bytes);
T = tokens of one forward pass (token batching: tokens_per_pass; else micro_batch_size * max_length, the worst
case of a batch), L layers, h hidden, i intermediate, V vocabulary, c = compute dtype size, a = activation size
(4 with train.fp32_upcast: peft's k-bit preparation upcasts embeddings and norms, so the stream is fp32; else c):

  quantized linear weights   nf4/fp4: 0.5 B/param + one fp32 absmax per 64-block (4/64 B/param);
                             double quant: the absmax in 8 bit + one fp32 per 256 of them (1/64 + 4/16384 B/param)
                             int8: 1 B/param + one fp32 scale per output row; none: c B/param (all linears)
  other base weights         embeddings, lm_head (bitsandbytes never quantizes it), norms, biases:
                             4 B/param when upcast, else c
  LoRA weights/grads/optim   4 + 4 B/param (peft keeps adapters in fp32) + AdamW 8 B/param or paged 8-bit 2 B/param
  activations                per layer and token: a * (5h + 4i) (norm input, q, k, v, attention output; the
                             activation function's four saved tensors) + 5 B per input feature of each LoRA layer
                             (its fp32 input copy after dropout + the dropout mask; 4 B without dropout); with
                             train.compile a * (6h + i) + the same LoRA bytes (Inductor recomputes the activation
                             function and fuses the elementwise chain; fitted to the H200 run of 2026-12-02:
                             27.2 GiB measured for 8,192 tokens without checkpointing, 41.4 GiB eager).
                             Saved through the forward: with gradient checkpointing L * a * h (each layer's
                             input), without L * one layer.
  logits and loss            T * V * 4 * 3 (the loss's fp32 log-softmax, its gradient and the logits' gradient;
                             the logits themselves are freed before backward); with token batching only one
                             chunk of loss_chunk trained positions is alive: chunk * V * 12 (bf16 logits, their
                             fp32 copy, the log-softmax; fitted to the 2026-12-02 H200 peaks)
  packing mask               T * max_length * a (the 4D block-diagonal mask), only with packing and without
                             token batching (varlen attention needs no mask)
  CUDA/allocator overhead    2 * the largest linear weight dequantized to c (bitsandbytes' transient buffers)
                             + 64 MiB (cuBLAS workspaces) + 5% of everything above (allocator rounding)

The peak is at the loss (saved activations + logits and loss) or later in backward, when the logits are gone and
one layer's gradients (with checkpointing also the recomputed layer: 2 layers; 1 with token batching, whose
measured peak at 8 x 2048 tokens, 5.0 GiB, the 2-layer term overstated by 25%) are alive; the larger phase
counts, and the activations term carries the backward phase's excess over the logits, if any.

`pick` resolves the "auto" settings from this estimate and the GPU's free memory: checkpointing off when a pass of
the tokens a step needs (capped at SATURATING_TOKENS) fits without it, tokens_per_pass the most that fits (up to
that need), micro_batch_size "auto" the max_length rows that fit in one pass.

Assumed: CUDA sdpa (flash/memory-efficient kernels keep no S x S score matrix), the peak at a step after the
first (optimizer state exists), and everything on one GPU. The 5% and the paged optimizer's state (CUDA
managed memory) are not seen by torch.cuda.max_memory_allocated; nvidia-smi also shows the CUDA context.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from .config import Config, parse_config
from .env import gpu_devices
from .model import check_model, compiles, compute_dtype, linear_modules, skeleton, targeted, upcasts
from .step_graphs import records_graphs

MiB = 1 << 20
GiB = 1 << 30
# Tokens per forward pass past which a few-billion-parameter model's matrix products fill a large GPU: bigger passes
# only cost memory. "auto" never plans passes larger than this (or than a step's records need).
SATURATING_TOKENS = 8192
# Share of the free memory the picks may plan for: the rest absorbs fragmentation and the CUDA context's growth.
USABLE = 0.85


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


class Model:
    """The memory model of one config: peak(tokens per pass, checkpointing) -> (bytes, terms)."""

    def __init__(self, config: Config) -> None:
        _, auto_config = check_model(config)  # ModelNotFound / BadConfig(target_modules); no GPU needed
        self.config = config
        model = skeleton(auto_config, config.trust_remote_code)
        self.dims = dims = _dims(auto_config)
        self.c = _dtype_bytes(_plan_dtype(config))
        self.upcast = config.quantized and upcasts(config)
        self.compiled = config.train.token_batching and compiles(config, torch.cuda.is_available() or config.quantized)
        self.a = 4 if self.upcast else self.c
        self.base_params = sum(p.numel() for p in model.parameters())
        output = model.get_output_embeddings()
        linears = [(n, m) for n, m in linear_modules(model) if m is not output]
        targets = targeted(config, model)

        def shape(module: torch.nn.Module) -> tuple:
            w = module.weight  # Linear: (out, in); Conv1D: (in, out)
            return (w.shape[1], w.shape[0]) if isinstance(module, torch.nn.Linear) else (w.shape[0], w.shape[1])

        self.lora_params = sum(config.lora.r * sum(shape(m)) for _, m in targets)
        self.quant_params = sum(m.weight.numel() for _, m in linears)
        self.largest = max((m.weight.numel() for _, m in linears), default=0)
        self.rows = sum(shape(m)[1] for _, m in linears)  # output features: int8 keeps one fp32 scale per row
        per_feature = 5 if config.lora.dropout > 0 else 4
        self.layer_lora = per_feature * sum(shape(m)[0] for _, m in targets) / max(1, dims["layers"])

    def weights(self) -> List[Dict[str, Any]]:
        config, c = self.config, self.c
        terms: List[Dict[str, Any]] = []

        def term(name: str, value: float, detail: str) -> None:
            terms.append({"name": name, "bytes": int(value), "detail": detail})

        q, quant_params = config.quantization, self.quant_params
        if q in ("nf4", "fp4"):
            per = 0.5 + (1 / 64 + 4 / (64 * 256) if config.double_quant else 4 / 64)
            term("quantized linear weights", quant_params * per,
                 f"{quant_params:,} params x {per:.4f} B ({q}: 4 bit + absmax per 64-block"
                 f"{', double-quantized' if config.double_quant else ' in fp32'})")
        elif q == "int8":
            term("quantized linear weights", quant_params + 4 * self.rows,
                 f"{quant_params:,} params x 1 B + fp32 row scales")
        else:
            term("linear weights", quant_params * c, f"{quant_params:,} params x {c} B (not quantized)")
        other_params = self.base_params - quant_params
        other_bytes = 4 if self.upcast else c
        term("other base weights", other_params * other_bytes,
             f"{other_params:,} params (embeddings, lm_head, norms, biases) x {other_bytes} B")
        optim = 2 if config.train.optimizer == "paged_adamw_8bit" else 8
        term("LoRA weights, gradients, optimizer", self.lora_params * (8 + optim),
             f"{self.lora_params:,} params x (4 B weight + 4 B grad + {optim} B {config.train.optimizer} state)")
        return terms

    def peak(self, tokens: int, checkpointing: bool) -> Tuple[float, float, List[Dict[str, Any]]]:
        """(peak bytes, activation bytes, terms) for forward passes of `tokens` tokens."""
        config, dims, a, c = self.config, self.dims, self.a, self.c
        terms = self.weights()

        def term(name: str, value: float, detail: str) -> None:
            terms.append({"name": name, "bytes": int(value), "detail": detail})

        batching = config.train.token_batching
        if self.compiled:
            layer = tokens * (a * (6 * dims["hidden"] + dims["intermediate"]) + self.layer_lora)
        else:
            layer = tokens * (a * (5 * dims["hidden"] + 4 * dims["intermediate"]) + self.layer_lora)
        chunk = min(tokens, config.train.loss_chunk or tokens) if batching else tokens
        logits = chunk * dims["vocab"] * (12 if batching else 4 * 3)
        term("logits and loss", logits,
             f"{chunk:,} trained positions x {dims['vocab']:,} vocab x 12 B (one loss chunk, recomputed in "
             "backward)" if batching else
             f"{tokens:,} tokens x {dims['vocab']:,} vocab x 4 B x 3 (log-softmax, its gradient, logits gradient)")
        if config.packing and not batching:
            term("packing mask", tokens * config.max_length * a, "4D block-diagonal attention mask")
        fixed = sum(t["bytes"] for t in terms)
        if checkpointing:
            act = tokens * dims["layers"] * a * dims["hidden"] + max(0.0, (1 if batching else 2) * layer - logits)
            term("activations (gradient checkpointing)", act,
                 f"{dims['layers']} saved layer inputs, {tokens:,} tokens; the recomputed layer and its gradients "
                 f"({_fmt(2 * layer)}) reuse the logits' memory in backward")
        else:
            act = dims["layers"] * layer + max(0.0, layer - logits)
            term("activations", act, f"{dims['layers']} layers x {_fmt(layer)} for {tokens:,} tokens")
        overhead = 2 * self.largest * c + 64 * MiB + 0.05 * (fixed + act)
        term("CUDA/allocator overhead", overhead, "dequantization buffers, cuBLAS workspace, 5% allocator rounding")
        terms.sort(key=lambda t: -t["bytes"])
        return fixed + act + overhead, act, terms

    def fit(self, free: float, checkpointing: bool) -> int:
        """The most tokens per pass (a multiple of 64) whose peak stays within USABLE * free; 0 if none."""
        low, high = 0, 1 << 21
        while high - low > 64:
            mid = (low + high) // 2 // 64 * 64
            if self.peak(mid, checkpointing)[0] <= USABLE * free:
                low = mid
            else:
                high = mid
        return low


def step_need(config: Config) -> int:
    """Tokens a forward pass needs to take a whole step at once (capped at SATURATING_TOKENS, at least max_length)."""
    train = config.train
    rows = train.micro_batch_size if isinstance(train.micro_batch_size, int) else None
    if rows is None:
        return max(config.max_length, SATURATING_TOKENS)
    worst = rows * train.gradient_accumulation * config.max_length
    return max(config.max_length, rows * config.max_length, min(worst, SATURATING_TOKENS))


def pick(config: Config, free: Optional[float], model: Optional[Model] = None) -> Dict[str, Any]:
    """Resolve micro_batch_size, gradient_checkpointing and tokens_per_pass ("auto" or given) for a device with
    `free` bytes (None: a CPU, where memory is not planned). Returns TrainPicks of protocol/engine.ts."""
    train, length = config.train, config.max_length
    batching = train.token_batching
    need = step_need(config) if batching else (
        train.micro_batch_size * length if isinstance(train.micro_batch_size, int) else SATURATING_TOKENS)
    if isinstance(train.tokens_per_pass, int) and batching:
        need = max(length, train.tokens_per_pass)
    reasons: List[str] = []
    checkpointing = train.gradient_checkpointing
    if free is None:
        if checkpointing == "auto":
            checkpointing = False
            reasons.append("no GPU: checkpointing off")
        tokens = need
    else:
        if checkpointing == "auto":
            model = model or Model(config)
            without = model.fit(free, False)
            checkpointing = without < need
            reasons.append(f"checkpointing {'on' if checkpointing else 'off'}: a pass of {need:,} tokens "
                           f"{'does not fit' if checkpointing else 'fits'} without it ({without:,} do)")
        fitted = not isinstance(train.tokens_per_pass, int) if batching else train.micro_batch_size == "auto"
        if not fitted:
            tokens = need  # given, or a micro-batch of given rows (below): nothing to fit
        else:
            model = model or Model(config)
            tokens = max(length, min(need, model.fit(free, bool(checkpointing))))
    rows = train.micro_batch_size
    if rows == "auto":
        rows = 1 if free is None else max(1, tokens // length)
        reasons.append(f"micro_batch_size {rows}: {rows} x {length:,} tokens per pass")
    if not batching:
        tokens = rows * length
    return {"microBatchSize": int(rows), "gradientCheckpointing": bool(checkpointing), "tokensPerPass": int(tokens),
            "compile": compiles(config, free is not None),
            "cudaGraphs": records_graphs(config, free is not None, bool(checkpointing)),
            "reason": "; ".join(reasons) or "as configured"}


def resolve(config: Config, free: Optional[float]) -> Tuple[Config, Dict[str, Any]]:
    """The config with every "auto" replaced by the pick for this device, and the picks."""
    import dataclasses
    picks = pick(config, free)
    train = dataclasses.replace(config.train, micro_batch_size=picks["microBatchSize"],
                                gradient_checkpointing=picks["gradientCheckpointing"],
                                tokens_per_pass=picks["tokensPerPass"])
    return dataclasses.replace(config, train=train), picks


def estimate(raw_config: Any) -> Dict[str, Any]:
    """TrainPlanResult of protocol/engine.ts."""
    config = parse_config(raw_config)
    model = Model(config)
    devices = gpu_devices()
    device: Optional[Dict[str, Any]] = devices[0] if devices else None
    picks = pick(config, None if device is None else device["freeMemory"], model)
    tokens = picks["tokensPerPass"]
    with_ckpt, _, _ = model.peak(tokens, True)
    without, _, _ = model.peak(tokens, False)
    peak, _, terms = model.peak(tokens, picks["gradientCheckpointing"])
    return {
        "baseParameters": int(model.base_params),
        "loraParameters": int(model.lora_params),
        "peakBytes": int(peak),
        "peakBytesWithCheckpointing": int(with_ckpt),
        "peakBytesWithoutCheckpointing": int(without),
        "terms": terms,
        "device": device,
        "fits": None if device is None else peak <= device["freeMemory"],
        "picks": picks,
        # data parallel: every device holds the whole model, so the peak is per device
        "devices": max(1, len(devices)) if config.train.devices == "auto" else int(config.train.devices),
    }
