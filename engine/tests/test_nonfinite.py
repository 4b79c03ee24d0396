"""Non-finite training: steps with a NaN/inf loss or gradient norm are skipped, and train.max_nonfinite_steps of
them in a row end the run failed (TrainingDiverged) with the step and the likely cause; the checkpoints written
before stay, and the adapter's weights are the last good ones. The fault is injected into the real step: after
the real backward, the gradients (and the loss) are overwritten with NaN/inf, as an overflow would leave them."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from qlora_engine.protocol import ERROR_CODES
from qlora_engine.recipe import Recipe


def diverging(ws, **train):
    return ws.config(lora={"dropout": 0.0}, train={"max_steps": 12, "learning_rate": 1.0, "warmup_steps": 0,
                                                   "lr_scheduler": "constant", "max_grad_norm": 0,
                                                   "save_every": 1, "keep_checkpoints": 20, **train})


@pytest.mark.parametrize("optimizer", ["adamw_torch", "adamw_torch_fused"])
def test_a_diverging_run_fails_naming_the_step_and_cause(ws, monkeypatch, optimizer):
    # The loss is poisoned from step 3 on: the optimizer must skip those updates and the run must end.
    from qlora_engine import recipe as recipe_module
    original = recipe_module.Recipe._token_batched_backward

    def poisoned(self):
        total, tokens = original(self)
        if self.step >= 2:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.fill_(float("nan"))
            total = total * float("nan")
        return total, tokens

    monkeypatch.setattr(recipe_module.Recipe, "_token_batched_backward", poisoned)
    run_dir = ws.runs / optimizer
    end = Recipe(diverging(ws, optimizer=optimizer, learning_rate=1e-3), run_dir).run()
    assert end["status"] == "failed", end
    error = end["error"]
    assert error["code"] == ERROR_CODES["TrainingDiverged"] and error["field"] == "train.learning_rate"
    assert "step 5" in error["message"] and "3 steps in a row" in error["message"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and run["error"]["code"] == ERROR_CODES["TrainingDiverged"]
    # The good checkpoints stay; the skipped steps did not change the weights.
    steps = sorted(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").iterdir())
    assert steps[:2] == [1, 2]
    good = load_file(str(run_dir / "checkpoints" / "step-2" / "adapter" / "adapter_model.safetensors"))
    last = load_file(str(run_dir / "checkpoints" / f"step-{steps[-1]}" / "adapter" / "adapter_model.safetensors"))
    for key, value in good.items():
        assert torch.isfinite(value).all(), key
        torch.testing.assert_close(last[key], value)
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] is None for r in rows if r["type"] == "train"][:5] == [False, False, True, True, True]


def test_isolated_bad_steps_are_skipped_and_the_run_completes(ws, monkeypatch):
    from qlora_engine import recipe as recipe_module
    original = recipe_module.Recipe._token_batched_backward

    def flaky(self):
        total, tokens = original(self)
        if self.step in (1, 3):  # one bad step at a time: never 3 in a row
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.fill_(float("inf"))
        return total, tokens

    monkeypatch.setattr(recipe_module.Recipe, "_token_batched_backward", flaky)
    end = Recipe(diverging(ws, max_steps=5, learning_rate=1e-3, save_every=0), ws.runs / "flaky").run()
    assert end["status"] == "completed", end

