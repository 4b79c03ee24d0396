"""train.strategy fsdp: the frozen base model's weights sharded across the train.devices processes with PyTorch's
FSDP2 (`torch.distributed.fsdp.fully_shard`), the FSDP-QLoRA recipe, for a model one GPU cannot train.

What is sharded: each decoder layer is one FSDP unit, its weights gathered from every rank just before its forward
(and again before its backward) and freed after; the input embeddings are one too (gathered for the lookup only: no
gradient flows into them), and the decoder body (its final norm) is the root unit, gathered for the whole step.
4-bit weights shard as ordinary tensors because bitsandbytes packs them into the float dtype of the other weights
(`bnb_4bit_quant_storage`, model.quant_storage); a gathered 4-bit weight gets its quantization state back from its
module in the forward (bitsandbytes' FSDP support), and that state (the absmax per block) stays whole on every rank.
lm_head stays whole on every rank too: the loss calls it outside the decoder, one chunk at a time (passes.py).
Loading is not sharded: each rank loads the whole base onto its GPU, then `shard` keeps only its part.

What is not: the LoRA parameters (`ignored_params`). They are a small part of the model, every rank keeps all of
them, and their gradients are summed by the recipe's own all-reduce (distributed.Group.sum_gradients) as with ddp.
FSDP's units hold only frozen weights, so FSDP reduces no gradient and none is summed twice; the optimizer, the
clipping, the non-finite skip, checkpoints and the final adapter are the single-process ones (rank 0 writes a normal
PEFT adapter, and a checkpoint resumes under either strategy).

Lockstep: every forward pass gathers each layer from all ranks, so all ranks run the same passes in the same order:
as many training passes per step (Group.passes adds empty ones to the ranks with fewer), evaluation on every rank,
generation with transformers' `synced_gpus`. torch.compile and CUDA graphs stay off (plan.pick): neither is
combined with FSDP's hooks and collectives here.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

import torch

from .config import Config
from .errors import BadConfig
from .model import base_model, decoder_layers


def available() -> bool:
    """FSDP2 with ignored_params (torch >= 2.7): the LoRA parameters must stay out of the shards."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        return False
    return "ignored_params" in inspect.signature(fully_shard).parameters


def unsupported(config: Config) -> Optional[str]:
    """Why this config cannot train with strategy fsdp; None when it can."""
    train = config.train
    if config.quantization == "int8":
        return "int8 weights (bitsandbytes Int8Params) cannot be sharded; use nf4, fp4 or none"
    if not train.token_batching:
        return "it needs train.token_batching: true (every rank must run the same forward passes)"
    if train.compile is True or train.cuda_graphs is True:
        return ("torch.compile and CUDA graphs are not combined with FSDP's hooks and collectives; set train.compile "
                "and train.cuda_graphs to auto or false")
    if not available():
        return f"this torch ({torch.__version__}) has no FSDP2 fully_shard with ignored_params (torch >= 2.7 has)"
    return None


def check(config: Config, devices: "int | str | None" = None) -> None:
    """BadConfig when train.strategy asks for fsdp over several devices (`devices`, else train.devices) and this
    config or this torch cannot have it (on one device fsdp resolves to ddp: nothing to shard)."""
    if config.train.strategy != "fsdp" or (config.train.devices if devices is None else devices) == 1:
        return
    reason = unsupported(config)
    if reason is not None:
        raise BadConfig(f"train.strategy fsdp: {reason}.", field="train.strategy")


def shard(model: Any, device: torch.device, world: int) -> None:
    """Shard the PEFT model's frozen base in place across the `world` ranks of the default process group (the
    embeddings and each decoder layer, then the decoder as the root); the LoRA parameters stay whole and trainable
    on every rank."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    lora = {p for p in model.parameters() if p.requires_grad}
    base = base_model(model)
    decoder = base.get_decoder()
    embeddings = base.get_input_embeddings()
    units = decoder_layers(model, field="train.strategy")
    if any(m is embeddings for m in decoder.modules()):
        units.insert(0, embeddings)
    for unit in units:  # freed again right after its forward (reshard_after_forward): only the root stays gathered
        fully_shard(unit, mesh=mesh, ignored_params=lora, reshard_after_forward=True)
    fully_shard(decoder, mesh=mesh, ignored_params=lora)
    # transformers' generate reads this: every rank keeps stepping until all are done (synced_gpus), so evaluation
    # generations never leave a rank alone in a gather.
    base._is_fsdp_managed_module = True
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the whole weights each rank loaded are gone: only its shards remain
