"""How long a run trains: train.epochs instead of max_steps, and train.early_stopping ending it when the validation
metric stops improving (keeping the best checkpoint, counting on across a resume)."""
from __future__ import annotations

import json
import threading

import yaml

from conftest import short_records, write_jsonl

from qlora_engine.recipe import Events, Recipe


class CancelAt(Events):
    def __init__(self, step: int, cancel: threading.Event) -> None:
        self.step, self.cancel = step, cancel

    def progress(self, params):
        if params["step"] == self.step:
            self.cancel.set()


def test_epochs_set_the_number_of_steps(ws):
    write_jsonl(ws.train, short_records(10, dialogue_chars=80))
    config = ws.config(data={"validation_split": 0.0},
                       train={"epochs": 3, "micro_batch_size": 2, "gradient_accumulation": 2, "max_steps": 999})
    recipe = Recipe(config, ws.runs / "epochs")
    summary = recipe.validate()
    rows = summary["trainSequences"]
    assert rows == 10 and recipe.total_steps == 3 * 3  # ceil(10 / (2 x 2)) = 3 steps per pass
    end = recipe.run()
    assert end["status"] == "completed" and end["step"] == 9
    assert yaml.safe_load((ws.runs / "epochs" / "config.yaml").read_text())["train"]["max_steps"] == 9
    epochs = [json.loads(x)["epoch"] for x in (ws.runs / "epochs" / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1] >= 2  # the third pass (epoch index 2) was reached


def stalled(ws, **train):
    """A run whose validation loss cannot improve (learning rate 1e-9): early stopping must end it."""
    write_jsonl(ws.train, short_records(16, dialogue_chars=80))
    return ws.config(data={"validation_split": 0.25}, train={
        "max_steps": 20, "learning_rate": 1e-9, "warmup_steps": 0, "eval_every": 1, "optimizer": "adamw_torch",
        "early_stopping": {"metric": "eval_loss", "patience": 2, "min_delta": 0.01}, **train})


def test_early_stopping_ends_the_run_completed_and_keeps_the_best(ws):
    end = Recipe(stalled(ws), ws.runs / "stop").run()
    assert end["status"] == "completed" and end["step"] == 3, end  # best at 1, no gain at 2 and 3
    run = json.loads((ws.runs / "stop" / "run.json").read_text())
    assert run["step"] == 3 and run["totalSteps"] == 20
    assert run["stopReason"].startswith("early stopping: eval_loss has not improved by more than 0.01 for 2")
    assert run["best"]["metric"] == "eval_loss" and run["best"]["step"] == 1  # best_metric follows early_stopping
    assert (ws.runs / "stop" / "checkpoints" / "step-1").is_dir() and (ws.runs / "stop" / "best-adapter").is_dir()
    assert (ws.runs / "stop" / "adapter" / "adapter_model.safetensors").is_file()


def test_early_stopping_counts_on_across_a_resume(ws):
    config = stalled(ws, save_every=1, keep_checkpoints=5)
    cancel = threading.Event()
    first = Recipe(config, ws.runs / "r", cancel=cancel, events=CancelAt(2, cancel)).run()
    assert first["status"] == "cancelled" and first["step"] == 2
    end = Recipe(config, ws.runs / "r", resume=True).run()
    assert end["status"] == "completed" and end["step"] == 3  # the same step as without the interruption


def test_early_stopping_needs_its_evaluations(ws):
    import pytest
    from qlora_engine.errors import BadConfig
    write_jsonl(ws.train, short_records(8, dialogue_chars=80))
    for train, field in (({"eval_every": 0, "early_stopping": {"metric": "eval_loss"}}, "train.early_stopping.metric"),
                         ({"early_stopping": {"metric": "rouge1"}}, "train.early_stopping.metric")):
        with pytest.raises(BadConfig) as info:
            Recipe(ws.config(train=train), ws.runs / "x").validate()
        assert info.value.field == field and not (ws.runs / "x").exists()
