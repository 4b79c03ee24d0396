"""CUDA graphs of the training passes: a pass's forward and backward replayed with one launch.

A small step (the tutorial's 4 records, ~1,200 tokens) is host-bound: with compiled layers it still launches
thousands of kernels through Python (peft's and bitsandbytes' wrappers, the compiled layers' runtime, autograd),
and the GPU idles between them. Here each pass is padded to a shape many passes share (passes.pad_to_bucket), and
the first time a shape is seen it runs eagerly (Dynamo, Inductor and the kernels' autotuning happen outside any
capture, and the pass is real work); the second time its forward and backward are recorded as one CUDA graph
(torch.cuda.graph), and from then on the pass is: copy its tokens into the graph's input tensors, replay.

What makes the replay the same computation as the eager pass:
- the loss is divided by a device tensor holding the step's target count (a Python number would be frozen into
  the graph);
- the gradients accumulate into the parameters' `.grad` tensors, recorded by address: they are allocated before
  the first recording and zeroed in place between steps (`zero_grad(set_to_none=False)`); `bind` puts them back
  if anything replaced them;
- dropout draws from the default CUDA generator, which PyTorch registers with every graph (each replay advances
  its offset), so each replay draws new numbers;
- all graphs share one memory pool: they are replayed one at a time, and only their loss outputs outlive a replay.
A graph that cannot be recorded (an operation that waits for the host inside the pass) raises `NotRecordable`;
the caller then trains eagerly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Set, Tuple

import torch

from .config import Config
from .passes import Pass, pass_loss_sum


def records_graphs(config: Config, cuda: bool, checkpointing: bool) -> bool:
    """train.cuda_graphs resolved: never off CUDA or without token_batching, or with gradient checkpointing (its
    recomputation saves and restores the RNG state, which a graph cannot); "auto" is on otherwise."""
    train = config.train
    if not cuda or not train.token_batching or checkpointing:
        return False
    return train.cuda_graphs is True or train.cuda_graphs == "auto"


# Passes longer than this run eagerly: they keep the GPU busy on their own (a packed 8,192-token pass: 0.2 s of
# kernels), so a replay would save little, and their graphs would hold the largest activations reserved.
MAX_TOKENS = 4096


class NotRecordable(RuntimeError):
    """The pass could not be recorded as a CUDA graph; the message says why."""


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: Pass  # device tensors the graph reads
    targets: torch.Tensor  # () float32: the step's target count, the loss's divisor
    loss: torch.Tensor  # () the pass's loss / targets, written by each replay


class StepGraphs:
    def __init__(self, model: Any, params: List[torch.nn.Parameter], device: torch.device, loss_chunk: int) -> None:
        self._model = model
        self._params = params
        self._device = device
        self._loss_chunk = loss_chunk
        self._pool = torch.cuda.graph_pool_handle()
        self._graphs: Dict[Tuple[int, int, int], _Graph] = {}
        self._seen: Set[Tuple[int, int, int]] = set()
        self._grads: List[torch.Tensor] = []

    @property
    def recorded(self) -> int:
        return len(self._graphs)

    def bind(self) -> None:
        """Make every parameter's .grad the tensor the graphs write (zeros when it had none)."""
        if not self._grads:
            self._grads = [torch.zeros_like(p) for p in self._params]
        for p, grad in zip(self._params, self._grads):
            if p.grad is not grad:
                if p.grad is None:
                    grad.zero_()
                else:
                    grad.copy_(p.grad)
                p.grad = grad

    def backward(self, batch: Pass, targets: int) -> torch.Tensor:
        """Forward and backward of a padded host pass (call inside varlen.attention); the gradients of
        loss / targets are added to .grad. Returns the pass's loss / targets (a device tensor: copy it or add it to
        something before the next call, which overwrites it)."""
        shape = batch.shape
        graph = self._graphs.get(shape)
        if graph is None and shape not in self._seen:
            self._seen.add(shape)
            self.bind()
            loss = pass_loss_sum(self._model, batch.to(self._device), loss_chunk=self._loss_chunk) / targets
            loss.backward()
            return loss.detach()
        if graph is None:
            graph = self._graphs[shape] = self._record(batch)
        self.bind()
        for static, host in zip(graph.inputs.tensors(), batch.tensors()):
            static.copy_(host.pin_memory(), non_blocking=True)
        graph.targets.fill_(float(targets))
        graph.graph.replay()
        return graph.loss

    def _record(self, batch: Pass) -> _Graph:
        self.bind()
        inputs = batch.to(self._device)
        targets = torch.ones((), dtype=torch.float32, device=self._device)
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self._device)
        try:
            # thread_local: the engine's RPC thread may use CUDA (memory queries) while this records
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                loss = pass_loss_sum(self._model, inputs, loss_chunk=self._loss_chunk) / targets
                loss.backward()
                loss = loss.detach()
        except Exception as exc:  # the capture is discarded; nothing ran, so the gradients are as they were
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise NotRecordable(f"{type(exc).__name__}: {first}") from exc
        return _Graph(graph, inputs, targets, loss)
