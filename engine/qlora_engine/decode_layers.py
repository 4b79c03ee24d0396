"""Compiled decode steps: one torch.compile of the decoder layer, shared by every layer of the model.

Why: a captured decode step is still ~40 small kernels per decoder layer (rotary embedding, GELU's seven
element-wise ops, casts, adds) at ~1.7 µs each inside a CUDA graph, more than reading the weights takes. Inductor
fuses them, but compiling the whole step took 25-92 s per shape family, because each of the 32 layers was traced and
lowered anew. Compiled per layer, the code is traced and lowered once (1-3.4 s) and the other layers run it with
their own weights, parameters and buffers being inputs of the compiled graph (H200, Phi-2 at batch 1: 312
tokens/s, the tutorial's generate 17.3 in the same run; docs/performance.md). One-row steps have their own
compilation, tuned for decode.matvec's products.

Two things would make Dynamo specialize the code per layer (a recompilation for each): the attention passes its
`layer_idx`, a constant, to the cache, which indexes its list of layers with it; and values held in closures are
guarded by identity. So a layer here gets `LayerCache`, its own part of the StaticCache that ignores the index, and
decode.py keeps the dense weights as buffers of their modules rather than in closures.

The embedding, rotary tables, final norm and LM head stay eager: a few kernels per step.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator, List

import torch

from .model import decoder_layers


class LayerCache:
    """One decoder layer's part of a transformers StaticCache: the attention's `update(k, v, layer_idx, ...)`
    writes to `layer` whatever index it passes."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> Any:
        return self.layer.update(key_states, value_states, *args, **kwargs)


def _layer_forward(_layer: torch.nn.Module, _part: LayerCache, *args: Any, **kwargs: Any) -> Any:
    for key in ("cache", "past_key_values"):  # transformers 5.24 renamed past_key_values to cache
        if kwargs.get(key) is not None:
            kwargs[key] = _part
    return type(_layer).forward(_layer, *args, **kwargs)


# One-row steps compile with coordinate descent: Inductor tunes each kernel's block sizes by timing them, which the
# one-row products (decode.matvec) need to approach the memory bandwidth (the tuned configurations are cached with the
# code). Batches call cuBLAS for their products; tuning their other kernels would add seconds of compiling for little.
OPTIONS = {"coordinate_descent_tuning": True}


def _one_row_forward(*args: Any, **kwargs: Any) -> Any:
    # its own code object: Dynamo keeps compiled code per code object, and this one compiles with other options
    return _layer_forward(*args, **kwargs)


@functools.lru_cache(maxsize=2)
def _compiled(one_row: bool = False) -> Any:
    # dynamic=None: the first shape compiles static; a second one recompiles with its changed sizes symbolic
    if one_row:
        return torch.compile(_one_row_forward, dynamic=None, options=OPTIONS)
    return torch.compile(_layer_forward, dynamic=None)


def layers_of(model: Any) -> List[torch.nn.Module]:
    """The decoder layers a step compiles, or [] when the architecture has no layer list (steps stay uncompiled)."""
    try:
        return decoder_layers(model)
    except Exception:  # noqa: BLE001 - BadConfig, or a model without get_decoder
        return []


@contextlib.contextmanager
def compiled_layers(model: Any, cache: Any, one_row: bool = False) -> Iterator[None]:
    """While the model runs: each decoder layer through the one compiled forward, on its own part of `cache`
    (`one_row`: the forward compiled for one-row steps)."""
    layers = layers_of(model)
    compiled = _compiled(one_row)
    for layer, part in zip(layers, cache.layers):
        layer.forward = functools.partial(compiled, layer, LayerCache(part))  # an instance attribute shadows the method
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
