"""The training step's speed machinery on CPU: the fused optimizer skips a non-finite update on the device, a
torch.compile failure falls back to eager layers and redoes the step exactly, and run.json records the picks."""
from __future__ import annotations

import json

import pytest
import torch

from qlora_engine import recipe as recipe_module
from qlora_engine.optim import step_skipping_non_finite
from qlora_engine.recipe import Recipe


def fused_adamw(param):
    try:
        return torch.optim.AdamW([param], lr=0.1, fused=True)
    except (RuntimeError, ValueError) as exc:  # a torch without the CPU fused kernel
        pytest.skip(f"fused AdamW unavailable on CPU: {exc}")


def test_fused_adamw_skips_a_non_finite_update_without_reading_the_norm():
    param = torch.nn.Parameter(torch.ones(4))
    optimizer = fused_adamw(param)
    param.grad = torch.full((4,), 0.5)
    assert step_skipping_non_finite(optimizer, torch.tensor(1.0))
    after_one = param.detach().clone()
    assert not torch.equal(after_one, torch.ones(4))
    state = {k: v.clone() for k, v in optimizer.state[param].items()}
    param.grad = torch.full((4,), float("nan"))
    assert step_skipping_non_finite(optimizer, torch.tensor(float("nan")))
    assert torch.equal(param.detach(), after_one)  # weights unchanged
    for key, value in state.items():  # moments and step count unchanged
        assert torch.equal(optimizer.state[param][key], value), key
    assert not hasattr(optimizer, "found_inf")


def test_other_optimizers_leave_the_check_to_the_host():
    param = torch.nn.Parameter(torch.ones(4))
    param.grad = torch.ones(4)
    assert not step_skipping_non_finite(torch.optim.AdamW([param], lr=0.1), torch.tensor(1.0))
    assert torch.equal(param.detach(), torch.ones(4))  # it did not step


def run_metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"train"' in x]


class Stages:
    def __init__(self):
        self.messages = []

    def stage(self, stage, message):
        self.messages.append((stage, message))

    def progress(self, params):
        pass

    def eval(self, params):
        pass

    def checkpoint(self, params):
        pass

    def end(self, params):
        pass


def test_a_compilation_failure_falls_back_to_eager_and_redoes_the_step(ws, monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    config = ws.config(train={"max_steps": 3, "micro_batch_size": 2, "gradient_accumulation": 2})
    plain = Recipe(config, ws.runs / "plain")
    assert plain.run()["status"] == "completed"

    monkeypatch.setattr(recipe_module, "compiles", lambda config, cuda: True)
    monkeypatch.setattr(recipe_module, "compile_layers", lambda model: None)
    undone = []
    monkeypatch.setattr(recipe_module, "uncompile_layers", lambda model: undone.append(model))
    original = Recipe._optimizer_step
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 2:  # fails halfway: the first micro-batch consumed data and randomness already
            self._order.next()
            torch.rand(3)
            raise TorchDynamoException("backend compiler failed: triton found no GPU")
        return original(self)

    monkeypatch.setattr(Recipe, "_optimizer_step", flaky)
    events = Stages()
    fallen = Recipe(config, ws.runs / "fallen", events=events)
    assert fallen.run()["status"] == "completed"
    assert len(undone) == 1
    assert any("torch.compile failed" in m and "eager" in m for _, m in events.messages)
    a, b = run_metrics(ws.runs / "plain"), run_metrics(ws.runs / "fallen")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], abs=1e-6)
    picks = json.loads((ws.runs / "fallen" / "run.json").read_text())["picks"]
    assert picks["compile"] is False


def test_run_json_records_the_picks(ws):
    config = ws.config(train={"max_steps": 1, "micro_batch_size": "auto", "gradient_checkpointing": "auto"})
    events = Stages()
    assert Recipe(config, ws.runs / "auto", events=events).run()["status"] == "completed"
    picks = json.loads((ws.runs / "auto" / "run.json").read_text())["picks"]
    assert picks["microBatchSize"] == 1 and picks["gradientCheckpointing"] is False and picks["compile"] is False
    assert picks["tokensPerPass"] >= 192
    loading = [m for s, m in events.messages if s == "loading-model"][0]
    assert "micro_batch_size 1" in loading and "gradient checkpointing off" in loading
