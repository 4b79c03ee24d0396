"""train/plan: parameter counts and an estimate of peak GPU memory, from the config alone (no weights loaded).

The architecture is built on the meta device from AutoConfig, so base and LoRA parameter counts are exact
(LoRA adds r * (in + out) per targeted linear layer, bias "none"). Memory is the sum of these terms (bytes);
T = tokens of one forward pass (token batching: tokens_per_pass; else micro_batch_size * max_length, the worst
case of a batch), L layers, h hidden, i intermediate, V vocabulary, c = compute dtype size, a = activation size
(4 with train.fp32_upcast: peft's k-bit preparation upcasts embeddings and norms, so the stream is fp32; else c):

  quantized linear weights   nf4/fp4: 0.5 B/param + one fp32 absmax per 64-block (4/64 B/param);
                             double quant: the absmax in 8 bit + one fp32 per 256 of them (1/64 + 4/16384 B/param)
                             int8: 1 B/param + one fp32 scale per output row; none: c B/param (all linears);
                             nf4/fp4 with train.dense_base: c B/param (dequantized once, dense_base.py)
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

With train.strategy fsdp over N devices (fsdp.py) the weights are per GPU: the decoder layers' and the embeddings'
weights / N (the 4-bit absmax stays whole on every GPU), the decoder's root unit (final norm) whole + its shard
(FSDP keeps it gathered through the step), lm_head whole, and two layers gathered (the one computing, the next
prefetched); LoRA, activations and the loss are a ddp rank's, eager (torch.compile is off). Loading holds the
whole base on each GPU before it is sharded (`load_bytes`).

The peak is at the loss (saved activations + logits and loss) or later in backward, when the logits are gone and
one layer's gradients (with checkpointing also the recomputed layer: 2 layers; 1 with token batching, whose
measured peak at 8 x 2048 tokens, 5.0 GiB, the 2-layer term overstated by 25%) are alive; the larger phase
counts, and the activations term carries the backward phase's excess over the logits, if any.

`pick` resolves the "auto" settings from this estimate and the GPU's free memory: with several devices the strategy
(fsdp when one GPU cannot train the whole model: one max_length record with checkpointing does not fit; ddp
otherwise), checkpointing off when a pass of the tokens a step needs (capped at SATURATING_TOKENS) fits without it,
tokens_per_pass the most that fits (up to that need), micro_batch_size "auto" the max_length rows that fit in one
pass.

Assumed: CUDA sdpa (flash/memory-efficient kernels keep no S x S score matrix), the peak at a step after the
first (optimizer state exists), and (ddp) the whole model on every GPU. The 5% and the paged optimizer's state (CUDA
managed memory) are not seen by torch.cuda.max_memory_allocated; nvidia-smi also shows the CUDA context.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from .config import Config, parse_config
from .env import gpu_devices
from .fsdp import check as check_fsdp, unsupported as fsdp_unsupported
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
        # Where FSDP puts the weights (shards = N): the decoder layers' own, lm_head's, and the root unit's (the rest).
        self.shards = 1
        self.dense = False  # train.dense_base: the 4-bit linears held dequantized, in the compute dtype
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
        layers = getattr(decoder, "layers", None) or []
        in_layers = {id(p) for layer in layers for p in layer.parameters()}
        self.layer_quant = sum(m.weight.numel() for _, m in linears if id(m.weight) in in_layers)
        self.layer_other = sum(p.numel() for layer in layers for p in layer.parameters()) - self.layer_quant
        self.head = output.weight.numel() if output is not None else 0
        embeddings = model.get_input_embeddings().weight
        self.embeddings = embeddings.numel()
        tied = output is not None and output.weight is embeddings
        self.root_other = (self.base_params - self.quant_params - self.layer_other - self.embeddings
                           - (0 if tied else self.head))

    def sharded(self, devices: int) -> "Model":
        """This model's memory under train.strategy fsdp over `devices` GPUs (eager layers: compile is off)."""
        out = copy.copy(self)
        out.shards, out.compiled = devices, False
        return out

    def densified(self) -> "Model":
        """This model's memory with train.dense_base (the 4-bit linears dequantized once; see dense_base.py)."""
        out = copy.copy(self)
        out.dense = True
        return out

    def load_bytes(self) -> float:
        """What a GPU holds once the base model is loaded: all of its weights (fsdp shards them only after)."""
        whole = copy.copy(self)
        whole.shards = 1
        return sum(t["bytes"] for t in whole.weights()[:2])

    def weights(self) -> List[Dict[str, Any]]:
        config, c = self.config, self.c
        terms: List[Dict[str, Any]] = []

        def term(name: str, value: float, detail: str) -> None:
            terms.append({"name": name, "bytes": int(value), "detail": detail})

        q, quant_params = config.quantization, self.quant_params
        if self.shards > 1:
            self._sharded_weights(term)
        elif q in ("nf4", "fp4") and self.dense:
            term("linear weights, dequantized once", quant_params * c,
                 f"{quant_params:,} params x {c} B ({q} weights held in the compute dtype: train.dense_base)")
        elif q in ("nf4", "fp4"):
            per = 0.5 + (1 / 64 + 4 / (64 * 256) if config.double_quant else 4 / 64)
            term("quantized linear weights", quant_params * per,
                 f"{quant_params:,} params x {per:.4f} B ({q}: 4 bit + absmax per 64-block"
                 f"{', double-quantized' if config.double_quant else ' in fp32'})")
        elif q == "int8":
            term("quantized linear weights", quant_params + 4 * self.rows,
                 f"{quant_params:,} params x 1 B + fp32 row scales")
        else:
            term("linear weights", quant_params * c, f"{quant_params:,} params x {c} B (not quantized)")
        if self.shards == 1:
            other_params = self.base_params - quant_params
            other_bytes = 4 if self.upcast else c
            term("other base weights", other_params * other_bytes,
                 f"{other_params:,} params (embeddings, lm_head, norms, biases) x {other_bytes} B")
        optim = 2 if config.train.optimizer == "paged_adamw_8bit" else 8
        term("LoRA weights, gradients, optimizer", self.lora_params * (8 + optim),
             f"{self.lora_params:,} params x (4 B weight + 4 B grad + {optim} B {config.train.optimizer} state)")
        return terms

    def _sharded_weights(self, term: Callable[[str, float, str], None]) -> None:
        """The base weights on one GPU under fsdp (see the module docstring)."""
        config, n = self.config, self.shards
        q = config.quantization
        packed = 0.5 if q in ("nf4", "fp4") else self.c  # bytes per param that FSDP shards (4-bit packed, or c)
        stats = (1 / 64 + 4 / (64 * 256) if config.double_quant else 4 / 64) if q in ("nf4", "fp4") else 0.0
        root_quant = self.quant_params - self.layer_quant
        ob = 4 if self.upcast else self.c
        term("linear weights (sharded)", self.layer_quant * packed / n + root_quant * packed * (1 + 1 / n)
             + self.quant_params * stats,
             f"{self.quant_params:,} params x {packed:g} B / {n} GPUs (FSDP)"
             + (f" + the {q} absmax ({stats:.4f} B/param) on every GPU" if stats else ""))
        term("other base weights (sharded)", (self.layer_other + self.embeddings) * ob / n
             + self.root_other * ob * (1 + 1 / n) + self.head * ob,
             f"embeddings and the layers' norms and biases / {n}, the final norm gathered for the step + its "
             f"shard, lm_head ({self.head:,} params) whole; x {ob} B")
        layers = max(1, self.dims["layers"])
        term("gathered layers (FSDP)", 2 * (self.layer_quant * packed + self.layer_other * ob) / layers,
             "2 decoder layers' weights gathered whole: the one computing and the next, prefetched")

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


def pick_strategy(config: Config, free: Optional[float], devices: int,
                  whole: Callable[[], Model]) -> Tuple[str, Optional[str]]:
    """train.strategy resolved for `devices` processes on GPUs with `free` bytes each, and why (None: as
    configured). "auto" takes fsdp only when one GPU cannot train the whole model at all: its smallest pass (one
    max_length record, or tokens_per_pass when given), with checkpointing unless it is turned off, does not fit."""
    asked = config.train.strategy
    if devices <= 1:
        return "ddp", ("one device: nothing to shard (strategy ddp)" if asked == "fsdp" else None)
    if asked != "auto":
        check_fsdp(config, devices)  # an fsdp this config or this torch cannot have is a BadConfig, as in training
        return asked, None
    if free is None:
        return "ddp", "no GPU: strategy ddp"
    train = config.train
    tokens = train.tokens_per_pass if isinstance(train.tokens_per_pass, int) else config.max_length
    need = whole().peak(max(tokens, config.max_length), train.gradient_checkpointing is not False)[0]
    if need <= USABLE * free:
        return "ddp", f"strategy ddp: one GPU trains the whole model ({_fmt(need)} at the smallest pass)"
    blocker = fsdp_unsupported(config)
    if blocker is not None:
        return "ddp", (f"strategy ddp, though one GPU cannot train the whole model ({_fmt(need)} at the smallest "
                       f"pass): fsdp is out, {blocker}")
    return "fsdp", (f"strategy fsdp: one GPU cannot train the whole model ({_fmt(need)} at the smallest pass, "
                    f"{_fmt(USABLE * free)} usable), so the base is sharded over {devices} GPUs")


def pick_dense_base(config: Config, free: Optional[float], sharded: bool,
                    peak: Callable[[], float]) -> Tuple[bool, Optional[str]]:
    """train.dense_base resolved, and why (None: nothing to say). Only 4-bit weights on one unsharded GPU; "auto"
    when the plan with the dequantized weights (`peak`) takes at most half of the usable free memory, so the
    memory QLoRA saves still goes to whoever needs it on a smaller card."""
    asked = config.train.dense_base
    if asked is False or config.quantization not in ("nf4", "fp4"):
        return False, None
    if free is None or sharded:
        return False, ("dense base off: " + ("no GPU" if free is None else "fsdp shards the 4-bit weights")
                       if asked is True else None)
    if asked is True:
        return True, None
    need = peak()
    if need <= 0.5 * USABLE * free:
        return True, f"dense base on: the 4-bit weights dequantized once ({_fmt(need)}, within half the free memory)"
    return False, f"dense base off: dequantized weights would take the plan to {_fmt(need)}, over half the free memory"


def pick(config: Config, free: Optional[float], model: Optional[Model] = None, devices: int = 1) -> Dict[str, Any]:
    """Resolve strategy (for `devices` processes), micro_batch_size, gradient_checkpointing and tokens_per_pass
    ("auto" or given) for devices with `free` bytes each (None: CPUs, where memory is not planned). `model` is the
    whole model's Model when the caller has one. Returns TrainPicks of protocol/engine.ts."""
    train, length = config.train, config.max_length
    whole = model

    def whole_model() -> Model:
        nonlocal whole
        whole = whole or Model(config)
        return whole

    strategy, why = pick_strategy(config, free, devices, whole_model)
    sharded = strategy == "fsdp"
    sized = (lambda: whole_model().sharded(devices)) if sharded else whole_model  # the memory of one GPU
    batching = train.token_batching
    need = step_need(config) if batching else (
        train.micro_batch_size * length if isinstance(train.micro_batch_size, int) else SATURATING_TOKENS)
    if isinstance(train.tokens_per_pass, int) and batching:
        need = max(length, train.tokens_per_pass)
    reasons: List[str] = [why] if why else []
    checkpointing = train.gradient_checkpointing
    if free is None:
        if checkpointing == "auto":
            checkpointing = False
            reasons.append("no GPU: checkpointing off")
        tokens = need
    else:
        if checkpointing == "auto":
            without = sized().fit(free, False)
            checkpointing = without < need
            reasons.append(f"checkpointing {'on' if checkpointing else 'off'}: a pass of {need:,} tokens "
                           f"{'does not fit' if checkpointing else 'fits'} without it ({without:,} do)")
        fitted = not isinstance(train.tokens_per_pass, int) if batching else train.micro_batch_size == "auto"
        if not fitted:
            tokens = need  # given, or a micro-batch of given rows (below): nothing to fit
        else:
            tokens = max(length, min(need, sized().fit(free, bool(checkpointing))))
    rows = train.micro_batch_size
    if rows == "auto":
        rows = 1 if free is None else max(1, tokens // length)
        reasons.append(f"micro_batch_size {rows}: {rows} x {length:,} tokens per pass")
    if not batching:
        tokens = rows * length
    dense, why = pick_dense_base(config, free, sharded, lambda: sized().densified().peak(tokens, bool(checkpointing))[0])
    if why:
        reasons.append(why)
    compiled = compiles(config, free is not None)
    graphs = records_graphs(config, free is not None, bool(checkpointing))
    if sharded and (compiled or graphs):
        reasons.append("fsdp: torch.compile and CUDA graphs off")
    return {"microBatchSize": int(rows), "gradientCheckpointing": bool(checkpointing), "tokensPerPass": int(tokens),
            "compile": compiled and not sharded, "cudaGraphs": graphs and not sharded, "denseBase": dense,
            "strategy": strategy,
            "reason": "; ".join(reasons) or "as configured"}


def resolve(config: Config, free: Optional[float], devices: int = 1) -> Tuple[Config, Dict[str, Any]]:
    """The config with every "auto" replaced by the pick for this device (one of `devices` processes), and the
    picks. fsdp also turns compile and cuda_graphs off in the config the run uses."""
    import dataclasses
    picks = pick(config, free, devices=devices)
    off = {"compile": False, "cuda_graphs": False} if picks["strategy"] == "fsdp" else {}
    train = dataclasses.replace(config.train, micro_batch_size=picks["microBatchSize"],
                                gradient_checkpointing=picks["gradientCheckpointing"],
                                tokens_per_pass=picks["tokensPerPass"], strategy=picks["strategy"], **off)
    return dataclasses.replace(config, train=train), picks


def estimate(raw_config: Any) -> Dict[str, Any]:
    """TrainPlanResult of protocol/engine.ts: every figure is one GPU's, for the strategy picked."""
    config = parse_config(raw_config)
    whole = Model(config)
    devices = gpu_devices()
    device: Optional[Dict[str, Any]] = devices[0] if devices else None
    count = max(1, len(devices)) if config.train.devices == "auto" else int(config.train.devices)
    picks = pick(config, None if device is None else device["freeMemory"], whole, devices=count)
    sharded = picks["strategy"] == "fsdp"
    model = whole.sharded(count) if sharded else whole.densified() if picks["denseBase"] else whole
    tokens = picks["tokensPerPass"]
    with_ckpt, _, _ = model.peak(tokens, True)
    without, _, _ = model.peak(tokens, False)
    peak, _, terms = model.peak(tokens, picks["gradientCheckpointing"])
    load = whole.load_bytes() if sharded else None  # fsdp: each GPU loads the whole base before sharding it
    return {
        "baseParameters": int(model.base_params),
        "loraParameters": int(model.lora_params),
        "peakBytes": int(peak),
        "peakBytesWithCheckpointing": int(with_ckpt),
        "peakBytesWithoutCheckpointing": int(without),
        "terms": terms,
        "device": device,
        "fits": None if device is None else peak <= device["freeMemory"] and (load or 0) <= device["freeMemory"],
        "picks": picks,
        "devices": count,
        **({"loadBytes": int(load)} if load is not None else {}),
    }
