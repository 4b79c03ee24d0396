"""Decoding with a static KV cache: greedy or sampled, stopping at EOS and stop strings, each step replayed from a
CUDA graph on the GPU.

Why: transformers' `generate` runs every step through Python (the model, peft's LoRA wrappers, bitsandbytes' 4-bit
wrappers), ~45 ms per token for Phi-2 on an H200 whatever the batch, while reading the 4-bit weights takes under a
millisecond. Captured once, a step costs the host one replay and a few small kernels.

How: the prompts are prefilled eagerly (in chunks) into a transformers `StaticCache`; a step's inputs are fixed
buffers (token ids, positions, a 4D boolean mask over the cache, True = attend) updated in place, so one graph serves
every step of every batch with the same rows, cache length and adapter state (`DecodeGraphs` keeps a few). The masks
are built here, not by transformers, whose mask code asks the host about the data (a sync, which capture forbids).
Every position attends at least to itself: a fully masked attention row gives NaN, and a NaN in the cache poisons
every row that masks it out (0 x NaN = NaN).

Rows: `adapter_rows` runs the active adapter on some rows and the base on the others in one batch. A hook on each
LoRA B multiplies its output by the row's 1 or 0, so an adapter row computes exactly what the adapter alone does
(x * 1 = x) and a base row exactly the base (result + 0 = result).

4-bit weights: bitsandbytes' kernels read the packed weights on every step (its gemv/gemm_4bit); with `dense`
(DecodeGraphs(dense=True), picked by the caller when the GPU has room) each 4-bit linear computes instead with its
weights dequantized once, in the compute dtype: the same weights, cuBLAS's products (rounding may differ in the last
bits, as between batch sizes), faster per step on batches. With `merge` too, when every row runs the adapter a
second dense copy has the adapter folded in (W + B·A·scale, summed in fp32): the LoRA layers then cost no kernels,
most of a batch-1 step's kernel count (H200, Phi-2 shapes: 202 tokens/s at batch 1 against 136 unmerged). Base rows
and mixed batches use the plain copy.

Compiled steps (`compile`, on by default on CUDA with Triton; QLORA_STUDIO_COMPILE_DECODE=0 turns them off): the
decoder layers run one torch.compile'd layer forward (decode_layers.py), which fuses a step's small kernels before
capture. The warm-up that compiles and the capture run under the same hooks and dense weights, so the capture never
recompiles; a compilation that fails leaves the step uncompiled, with a warning. At one row the dense linears are
`matvec`s, which Inductor generates in place of cuBLAS's GEMVs (H200, batch 1: 312 tokens/s against 288).

The host looks at the tokens every `CHECK_EVERY` steps (one sync) for EOS, stop strings and streaming; a row's
tokens after its end are the pad token, as with transformers.
"""
from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import os
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch

from .decode_layers import compiled_layers, layers_of
from .dense_base import dense_linear, dequantized, modules_4bit
from .model import has_triton

log = logging.getLogger(__name__)

CHECK_EVERY = 8
# Captures that may trigger a compilation: every (rows, cache length, adapter state) family shares one code object.
RECOMPILE_LIMIT = 64
# One-row products of compiled steps through `matvec` (False: cuBLAS's GEMV, which the benchmarks compare with).
MATVEC = True
# Cache lengths are rounded up to a multiple of this, so batches of similar prompts share one graph.
LENGTH_STEP = 128

# row's new tokens so far -> how many of them complete a stop string (None: no stop string yet)
StopAt = Callable[[List[int]], Optional[int]]


def supported(model: Any) -> bool:
    """Whether this model can decode here: transformers marks the architectures whose forward works with a static
    cache under full-graph compilation, which is what capture needs too; with SDPA attention, which takes our mask."""
    hf = _hf(model)
    return bool(getattr(hf, "_can_compile_fullgraph", False)) and \
        getattr(hf.config, "_attn_implementation", None) == "sdpa"


def _hf(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _cache_kwarg(hf: Any) -> str:
    # transformers 5.24 renamed past_key_values to cache (the old name is deprecated, not gone)
    return "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"


def _lora_bs(model: Any) -> List[torch.nn.Module]:
    """The active adapter's LoRA B modules (empty when the model has no adapter or it is disabled)."""
    out = []
    for module in _hf(model).modules():
        lora_b = getattr(module, "lora_B", None)
        if isinstance(lora_b, torch.nn.ModuleDict) and not getattr(module, "disable_adapters", True):
            out += [lora_b[name] for name in module.active_adapters if name in lora_b]
    return out


def adapter_state(model: Any, mixed: bool) -> Tuple[Any, ...]:
    """What a captured graph depends on besides shapes: which adapter its LoRA layers ran, and whether rows mix."""
    hf = _hf(model)
    active = tuple(getattr(model, "active_adapters", ()) or ()) if _lora_bs(model) else ()
    return (id(hf), active, mixed)


@dataclass
class _Step:
    """One decode step for `rows` rows over a cache of `length` positions: its buffers and, on CUDA, its graph."""
    model: Any
    rows: int
    length: int
    mixed: bool
    dense: "Dense" = field(default_factory=dict)
    cache: Any = None
    ids: torch.Tensor = None
    pos: torch.Tensor = None
    mask: torch.Tensor = None
    cpos: torch.Tensor = None
    row_scale: Optional[torch.Tensor] = None
    compiled: bool = False
    graph: Any = None
    logits: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        from transformers import StaticCache
        hf = _hf(self.model)
        dev = hf.device
        self.cache = StaticCache(config=hf.config, max_cache_len=self.length)
        self.ids = torch.zeros(self.rows, 1, dtype=torch.long, device=dev)
        self.pos = torch.zeros(self.rows, 1, dtype=torch.long, device=dev)
        self.mask = torch.zeros(self.rows, 1, 1, self.length, dtype=torch.bool, device=dev)
        self.cpos = torch.zeros(1, dtype=torch.long, device=dev)
        self._hf = hf
        self._kwarg = _cache_kwarg(hf)
        # the step's LoRA B modules, found once: the model's modules do not change while a step lives
        self._lora_bs = _lora_bs(self.model) if self.mixed else []
        if self.mixed:
            dtype = self._lora_bs[0].weight.dtype if self._lora_bs else hf.dtype
            self.row_scale = torch.ones(self.rows, 1, 1, dtype=dtype, device=dev)

    @contextlib.contextmanager
    def row_hooks(self) -> Iterator[None]:
        """While the model runs (or is captured): LoRA B outputs times each row's 1 (adapter) or 0 (base), and the
        4-bit linears on their dense weights when there are any."""
        handles = []
        if self.row_scale is not None:
            scale = self.row_scale
            handles = [b.register_forward_hook(lambda _m, _i, out: out * scale) for b in self._lora_bs]
        try:
            with _dense_linears(self.dense):
                yield
        finally:
            for handle in handles:
                handle.remove()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return _forward(self._hf, self._kwarg, self.cache, ids, mask, pos)

    def _step(self, compiled: bool = False) -> torch.Tensor:
        self.mask.index_fill_(3, self.cpos, True)  # the new token sees itself
        one_row = MATVEC and self.rows == 1
        with compiled_layers(self._hf, self.cache, one_row) if compiled else contextlib.nullcontext():
            logits = _forward(self._hf, self._kwarg, self.cache, self.ids, self.mask, self.pos)
        self.cpos.add_(1)
        self.pos.add_(1)
        return logits

    def capture(self) -> None:
        """Warm up on a side stream (lazy cache allocation, cuBLAS handles, bitsandbytes' setup, compilation), then
        record. One `row_hooks` around both: the hooks and dense forwards the compiled code was guarded on are the
        very objects the capture sees."""
        with self.row_hooks():
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self.warm_up()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), _recompile_limit():
                self.logits = self._step(self.compiled)
        self.graph = graph

    def warm_up(self) -> None:
        """Two steps as the capture will run them (compiling them first when `compiled`), inside `row_hooks`. A
        compilation that fails leaves the step uncompiled, with a warning: eager steps compute the same."""
        self.mask[..., 0] = True
        with _recompile_limit():
            self._step()  # eager first: the cache allocates itself lazily, which compiled code would guard on
            try:
                for _ in range(2):
                    self._step(self.compiled)
            except Exception as exc:  # noqa: BLE001 - Dynamo and Inductor raise many kinds; eager is correct
                if not self.compiled:
                    raise
                log.warning("decode: torch.compile of the decoder layers failed (%s); decoding uncompiled",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self.compiled = False
                self.cache.reset()
                for _ in range(2):
                    self._step()

    def run(self) -> torch.Tensor:
        if self.graph is not None:
            self.graph.replay()
            return self.logits
        with self.row_hooks():
            return self._step()


class DecodeGraphs:
    """The captured steps of one loaded model, least recently used dropped first, and the dense copies of its 4-bit
    weights when `dense` (the plain one, and with `merge` one with the active adapter folded in); `compile`: steps
    compiled before capture. Clear it whenever the model's modules change (an adapter loaded or deleted): a graph
    holds the addresses of the weights it was captured with."""

    def __init__(self, limit: int = 3, dense: bool = False, merge: bool = True, compile: bool = False) -> None:
        self.limit = limit
        self.dense = dense
        self.merge = merge
        self.compile = compile
        self._steps: "OrderedDict[Tuple[Any, ...], _Step]" = OrderedDict()
        self._variants: "OrderedDict[Any, Dense]" = OrderedDict()
        self.captured = 0

    def clear(self) -> None:
        self._steps.clear()
        self._variants.clear()

    def weights(self, model: Any, variant: Any) -> "Dense":
        """The dense weights of `variant`: "plain", or ("merged", adapters); at most these two are kept."""
        if not self.dense:
            return {}
        found = self._variants.pop(variant, None)
        if found is None:
            while len(self._variants) >= 2:
                old, _ = self._variants.popitem(last=False)
                for key in [k for k in self._steps if k[-1] == old]:  # their graphs hold the old weights
                    del self._steps[key]
            plain = self._variants.get("plain") or dense_weights(model)
            found = plain if variant == "plain" else merged_weights(model, plain)
        self._variants[variant] = found
        return found

    def step(self, model: Any, rows: int, length: int, mixed: bool) -> _Step:
        state = adapter_state(model, mixed)
        variant = ("merged", state[1]) if self.dense and self.merge and state[1] and not mixed else "plain"
        key = (rows, length, state, variant)
        found = self._steps.pop(key, None)
        if found is None:
            while len(self._steps) >= self.limit:
                self._steps.popitem(last=False)
            try:
                found = _new_step(model, rows, length, mixed, self.weights(model, variant), self.compile)
            except torch.cuda.OutOfMemoryError:
                # The dense copies and the other graphs' caches go, and the packed 4-bit kernels take over: slower,
                # but this batch fits where it fitted before decode.py (a second OOM is the caller's to report).
                log.warning("decode: out of GPU memory for %d rows x %d positions; dropping the dense weights and "
                            "cached graphs", rows, length)
                self.clear()
                self.dense = False
                gc.collect()
                torch.cuda.empty_cache()
                key = (rows, length, state, "plain")
                found = _new_step(model, rows, length, mixed, {}, self.compile)
            self.captured += found.graph is not None
            self.compile = self.compile and found.compiled  # a failed compilation is not retried
        self._steps[key] = found
        return found


def _graphs_possible(model: Any) -> bool:
    if not torch.cuda.is_available() or _hf(model).device.type != "cuda":
        return False
    quant = getattr(_hf(model).config, "quantization_config", None)
    bits8 = quant is not None and (quant.get("load_in_8bit") if isinstance(quant, dict)
                                   else getattr(quant, "load_in_8bit", False))
    return not bits8  # bitsandbytes' int8 matmul decides on the host from the data: not capturable


def compiles() -> bool:
    """Whether decode steps are compiled: on CUDA with Triton for Inductor's GPU kernels, unless
    QLORA_STUDIO_COMPILE_DECODE=0."""
    return os.environ.get("QLORA_STUDIO_COMPILE_DECODE") != "0" and torch.cuda.is_available() and has_triton()


def _forward(hf: Any, kwarg: str, cache: Any, ids: torch.Tensor, mask: torch.Tensor,
             pos: torch.Tensor) -> torch.Tensor:
    out = hf(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
             **{kwarg: cache})
    return out.logits[:, -1]


def _recompile_limit() -> Any:
    return torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)


def _new_step(model: Any, rows: int, length: int, mixed: bool, dense: "Dense", compile: bool = False) -> _Step:
    step = _Step(model, rows, length, mixed, dense)
    step.compiled = compile and _graphs_possible(model) and bool(layers_of(model))
    if _graphs_possible(model):
        try:
            step.capture()
        except RuntimeError as exc:  # an op that needs the host: decode eagerly with the same buffers
            log.warning("decode: CUDA graph capture failed (%s); decoding without graphs", str(exc).splitlines()[0])
            step.graph = None
    return step


def dense_bytes(model: Any) -> int:
    """GPU memory the dense copies of the model's 4-bit weights take (0: none are 4-bit)."""
    return sum(m.weight.quant_state.shape.numel() * m.compute_dtype.itemsize for m in modules_4bit(_hf(model))
               if m.compute_dtype is not None)


# module whose forward is replaced -> (the 4-bit linear whose bias and casts it keeps, the dense weight)
Dense = Dict[torch.nn.Module, Tuple[torch.nn.Module, torch.Tensor]]


def dense_weights(model: Any) -> Dense:
    return {m: (m, dequantized(m)) for m in modules_4bit(_hf(model)) if m.compute_dtype is not None}


def merged_weights(model: Any, plain: Dense) -> Dense:
    """`plain` with the active adapter folded into each vanilla LoRA layer over a 4-bit linear: the LoRA layer's
    forward is replaced by the merged product, so neither its adapter nor its base layer runs."""
    out = dict(plain)
    for module in _hf(model).modules():
        base = getattr(module, "base_layer", None)
        if base not in plain or getattr(module, "disable_adapters", True) or len(module.active_adapters) != 1:
            continue
        name = module.active_adapters[0]
        if name not in module.lora_A or name in getattr(module, "lora_variant", {}):
            continue  # DoRA and other variants are not a plain sum: they stay unmerged
        weight = plain[base][1]
        delta = module.get_delta_weight(name)
        out.pop(base)
        out[module] = (base, (weight.float() + delta.float()).to(weight.dtype))
    return out


def _dense_forward(self: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """bitsandbytes' Linear4bit.forward with the dequantized weight: the same casts, cuBLAS's product (or, for one
    row under compilation, `matvec`'s)."""
    weight, bias = self._decode_weight, self._decode_bias
    bias = None if bias is None else bias.to(weight.dtype)
    if MATVEC and torch.compiler.is_compiling() and x.numel() == x.shape[-1]:
        return matvec(x, weight, bias)
    return dense_linear(x, weight, bias)


def matvec(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """One row times the weight as a multiply-and-sum in fp32 (cuBLAS's accumulation), for Inductor to generate.

    Why: at batch 1 a step is bound by reading the weights, and cuBLAS's GEMVs read Phi-2's 2560 x 2560 ones at ~40%
    of the H200's bandwidth (bench/profile_decode.py). Inductor makes the product a reduction kernel, tunes its
    blocks to the shape (coordinate descent, decode_layers.py), and fuses what surrounds it: the bias, GELU, the
    residual add, and q/k/v, which read the same row, into one kernel."""
    out = (x.float().unsqueeze(-2) * weight.float()).sum(-1)
    if bias is not None:
        out = out + bias.float()
    return out.to(weight.dtype).to(x.dtype)


@contextlib.contextmanager
def _dense_linears(weights: Dense) -> Iterator[None]:
    # Buffers and a method rather than a closure: compiled layers take buffers as graph inputs, but guard closure
    # values by identity (a recompilation per layer).
    for module, (linear, weight) in weights.items():
        module.register_buffer("_decode_weight", weight, persistent=False)
        module.register_buffer("_decode_bias", linear.bias, persistent=False)
        module.forward = types.MethodType(_dense_forward, module)  # an instance attribute shadows the method
    try:
        yield
    finally:
        for module in weights:
            del module.forward, module._decode_weight, module._decode_bias


def _prefill_mask(valid: torch.Tensor, start: int, end: int, length: int) -> torch.Tensor:
    """(rows, 1, end-start, length): query i (absolute start+i) sees valid keys j <= start+i, and itself."""
    rows = valid.shape[0]
    keys = torch.arange(length, device=valid.device)
    queries = torch.arange(start, end, device=valid.device)
    causal = keys[None, :] <= queries[:, None]
    mask = causal[None] & valid[:, None, :]
    mask |= (keys[None, :] == queries[:, None])[None]
    return mask.view(rows, 1, end - start, length)


def _choose(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The next token of each row: argmax, or a sample at `temperature` from the top-p nucleus (transformers'
    order: temperature, then top-p keeping at least the most likely token)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    if top_p < 1.0:
        ordered, index = scores.sort(dim=-1)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1 - top_p
        drop[..., -1:] = False
        scores = scores.masked_fill(drop.scatter(-1, index, drop), float("-inf"))
    return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)


@dataclass
class Decoded:
    tokens: List[List[int]]  # each row's new tokens (pad after its end)
    done_at: Dict[int, int]  # row -> how many tokens it had when a stop string was complete
    captured: bool


def decode(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new: int, eos: Optional[int],
           pad: int, temperature: float = 0.0, top_p: float = 1.0, stop_at: Optional[StopAt] = None,
           streamer: Any = None, adapter_rows: Optional[List[bool]] = None, graphs: Optional[DecodeGraphs] = None,
           chunk: int = 1024) -> Decoded:
    """Left-padded prompts -> up to max_new tokens per row. The caller holds inference mode and the seed."""
    rows, width = input_ids.shape
    dev = _hf(model).device
    length = width + max_new
    if _graphs_possible(model):  # rounded up so that batches of similar prompts replay one graph
        length = -(-length // LENGTH_STEP) * LENGTH_STEP
    mixed = adapter_rows is not None
    step = (graphs or DecodeGraphs(limit=1)).step(model, rows, length, mixed)
    step.cache.reset()
    if step.row_scale is not None:
        step.row_scale.copy_(torch.tensor(adapter_rows, dtype=step.row_scale.dtype).view(rows, 1, 1))

    ids = input_ids.to(dev)
    prompt_mask = attention_mask.to(dev).bool()
    positions = (prompt_mask.long().cumsum(dim=1) - 1).clamp(min=0)
    valid = torch.zeros(rows, length, dtype=torch.bool, device=dev)
    valid[:, :width] = prompt_mask
    with step.row_hooks():
        for start in range(0, width, chunk):
            end = min(start + chunk, width)
            logits = step.forward(ids[:, start:end], _prefill_mask(valid, start, end, length),
                                  positions[:, start:end])
    step.mask.copy_(valid.view(rows, 1, 1, length))
    step.cpos.fill_(width)
    step.pos.copy_(prompt_mask.sum(dim=1, keepdim=True))

    if streamer is not None:
        streamer.put(input_ids)
    out = torch.full((rows, max_new), pad, dtype=torch.long, device=dev)
    unfinished = torch.ones(rows, dtype=torch.bool, device=dev)
    done_at: Dict[int, int] = {}
    seen = 0  # tokens already looked at on the host
    produced = 0
    for t in range(max_new):
        if t > 0:
            logits = step.run()
        token = torch.where(unfinished, _choose(logits, temperature, top_p), pad)
        out[:, t] = token
        produced = t + 1
        if eos is not None:
            unfinished &= token != eos
        step.ids.copy_(token.view(rows, 1))
        if t == 0 or produced - seen >= CHECK_EVERY or produced == max_new:
            if not _look(out, seen, produced, unfinished, streamer, stop_at, done_at):
                break
            seen = produced
    if streamer is not None:
        if seen < produced:
            _stream(streamer, out[:, seen:produced].tolist())
        streamer.end()
    return Decoded(out[:, :produced].tolist(), done_at, step.graph is not None)


def _stream(streamer: Any, columns: List[List[int]]) -> None:
    for t in range(len(columns[0]) if columns else 0):
        streamer.put(torch.tensor([[row[t]] for row in columns]))


def _look(out: torch.Tensor, seen: int, produced: int, unfinished: torch.Tensor, streamer: Any,
          stop_at: Optional[StopAt], done_at: Dict[int, int]) -> bool:
    """The host's look at the tokens since the last one (one sync): stream them, end the rows whose text holds a
    stop string. False when every row has ended."""
    tokens = out[:, :produced].tolist()
    live = unfinished.tolist()
    if streamer is not None:
        _stream(streamer, [row[seen:produced] for row in tokens])
    if stop_at is not None:
        for row, ids in enumerate(tokens):
            if row in done_at:
                continue
            count = stop_at(ids)
            if count is not None:
                done_at[row] = count
                if live[row]:
                    live[row] = False
                    unfinished[row] = False
    return any(live)
