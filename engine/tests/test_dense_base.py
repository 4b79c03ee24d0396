"""dense_base.py: a 4-bit linear replaced by its weights dequantized once computes exactly what bitsandbytes does
(forward and input gradient: the same values in the same products), inside a PEFT LoRA layer too. bitsandbytes'
CPU backend quantizes and dequantizes here; the GPU run is bench/engine_speed.py's."""
from __future__ import annotations

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes")

from qlora_engine.dense_base import DenseLinear, dequantize_base, linears_4bit  # noqa: E402


def linear_4bit(n_in: int, n_out: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    dense = torch.nn.Linear(n_in, n_out, dtype=torch.bfloat16)
    q = bnb.nn.Linear4bit(n_in, n_out, bias=True, compute_dtype=torch.bfloat16, quant_type="nf4")
    q.weight = bnb.nn.Params4bit(dense.weight.data.clone(), requires_grad=False, quant_type="nf4")
    q.bias = torch.nn.Parameter(dense.bias.data.clone(), requires_grad=False)
    return q.to("cpu")  # quantizes


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = linear_4bit(64, 64, 0)
        self.fc1 = linear_4bit(64, 128, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(torch.nn.functional.gelu(self.q_proj(x)))


def run(model: torch.nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    out = model(x)
    out.float().square().sum().backward()
    lora = [p.grad.clone() for n, p in model.named_parameters() if p.requires_grad]
    return out.detach(), x.grad, lora


def test_dense_base_computes_what_bitsandbytes_computes():
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(2)
    model = get_peft_model(Block(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], lora_dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    x = torch.randn(2, 7, 64, dtype=torch.bfloat16)
    assert linears_4bit(model) == 2
    ref = run(model, x)
    assert dequantize_base(model) == 2
    assert linears_4bit(model) == 0
    assert isinstance(model.base_model.model.fc1, DenseLinear)
    assert isinstance(model.base_model.model.q_proj.base_layer, DenseLinear)  # LoRA still wraps it
    out = run(model, x)
    torch.testing.assert_close(out[0], ref[0], rtol=0, atol=0)
    torch.testing.assert_close(out[1], ref[1], rtol=0, atol=0)
    for a, b in zip(out[2], ref[2]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # nothing of the dense copy is saved with the adapter
    assert not any("weight" in k and "lora" not in k for k in model.state_dict() if "fc1" in k)
