"""Cancel, checkpoint, resume: an interrupted run continues exactly where it stopped."""
from __future__ import annotations

import json
import shutil
import threading

import pytest
from safetensors.torch import load_file

from conftest import TINY, short_records, write_jsonl

from qlora_engine import checkpoint
from qlora_engine.errors import BadConfig, CheckpointNotFound, RunNotFound
from qlora_engine.recipe import Events, Recipe


class CancelAt(Events):
    def __init__(self, step: int, cancel: threading.Event) -> None:
        self.step, self.cancel, self.ends, self.checkpoints = step, cancel, [], []

    def progress(self, params):
        if params["step"] == self.step:
            self.cancel.set()

    def checkpoint(self, params):
        self.checkpoints.append(params["step"])

    def end(self, params):
        self.ends.append(params)


def metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def resume_config(ws):
    write_jsonl(ws.train, short_records(8, dialogue_chars=100))
    # dropout > 0 so the resumed run only matches if the RNG state is restored too
    return ws.config(lora={"dropout": 0.1}, data={"validation_split": 0.25}, max_length=128,
                     train={"max_steps": 6, "micro_batch_size": 2, "gradient_accumulation": 2, "eval_every": 2,
                            "save_every": 2, "keep_checkpoints": 5, "warmup_steps": 2, "lr_scheduler": "cosine"})


def test_cancel_then_resume_equals_an_uninterrupted_run(ws):
    config = resume_config(ws)
    full = Recipe(config, ws.runs / "full").run()
    assert full["status"] == "completed"

    cancel = threading.Event()
    events = CancelAt(3, cancel)
    part_dir = ws.runs / "part"
    end = Recipe(config, part_dir, events=events, cancel=cancel).run()
    assert end["status"] == "cancelled" and end["step"] == 3 and end["adapterPath"] is None
    assert end["checkpointPath"] == str(part_dir / "checkpoints" / "step-3")
    assert events.checkpoints == [2, 3] and events.ends == [end]
    assert json.loads((part_dir / "run.json").read_text())["status"] == "cancelled"
    assert not (part_dir / "adapter").exists()

    # What a crash would leave: a half-written checkpoint in a temp folder, a step folder without state.json,
    # and metrics past the checkpoint. Resume must ignore the first two and drop the third.
    leftover = part_dir / "checkpoints" / ".tmp-step-4-crashed"
    (leftover / "adapter").mkdir(parents=True)
    (leftover / "optimizer.pt").write_bytes(b"truncated")
    (part_dir / "checkpoints" / "step-6").mkdir()
    with open(part_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "train", "step": 4, "loss": 123.0}) + "\n")
    assert checkpoint.latest(part_dir / "checkpoints").name == "step-3"

    resumed = Recipe(config, part_dir, resume=True)
    assert resumed.validate()["trainRecords"] == 6
    assert resumed.start_step == 3
    end = resumed.run()
    assert end["status"] == "completed" and end["step"] == 6
    assert not leftover.exists()

    a, b = metrics(ws.runs / "full"), metrics(part_dir)
    assert [(r["type"], r["step"]) for r in a] == [(r["type"], r["step"]) for r in b]
    for x, y in zip(a, b):
        for key in ("loss", "learningRate", "gradNorm", "evalLoss", "epoch"):
            if key in x:
                assert x[key] == pytest.approx(y[key], abs=1e-6, rel=1e-6), (x, y, key)
    wa = load_file(str(ws.runs / "full" / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(part_dir / "adapter" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and len(wa) > 0
    for key in wa:
        assert (wa[key] - wb[key]).abs().max().item() <= 1e-6, key


def test_resume_needs_a_run_and_a_checkpoint(ws):
    config = ws.config()
    with pytest.raises(RunNotFound):
        Recipe(config, ws.runs / "none", resume=True).validate()
    (ws.runs / "empty" / "checkpoints" / ".tmp-step-2-x").mkdir(parents=True)
    with pytest.raises(CheckpointNotFound):
        Recipe(config, ws.runs / "empty", resume=True).validate()


def test_a_new_run_never_overwrites_an_old_one(ws):
    (ws.runs / "old").mkdir(parents=True)
    (ws.runs / "old" / "run.json").write_text("{}")
    with pytest.raises(BadConfig):
        Recipe(ws.config(), ws.runs / "old").validate()


def test_a_failure_after_validation_ends_failed(ws, tmp_path):
    """Weights missing: validation (config, tokenizer) passes, loading fails; run.json must say failed."""
    model = tmp_path / "no-weights"
    shutil.copytree(TINY, model, ignore=shutil.ignore_patterns("*.safetensors"))
    end = Recipe(ws.config(model=str(model)), ws.runs / "broken").run()
    assert end["status"] == "failed" and end["error"]["code"] == -32003 and end["adapterPath"] is None
    run = json.loads((ws.runs / "broken" / "run.json").read_text())
    assert run["status"] == "failed" and run["error"]["code"] == -32003 and run["endedAt"]


def test_resume_keeps_the_picked_micro_batch_size(ws, monkeypatch):
    """micro_batch_size: auto is resolved once; a resume on a device with other free memory (which would pick
    another size) continues with the recorded one, so the data order and the result are those of one run."""
    from qlora_engine import plan, recipe as recipe_module

    def resolving_to(size):
        def resolve(config, free, devices=1):
            import dataclasses
            if config.train.micro_batch_size == "auto":
                config = dataclasses.replace(config, train=dataclasses.replace(config.train, micro_batch_size=size))
            return plan.resolve(config, free, devices)
        return resolve

    base = resume_config(ws)
    fixed = Recipe(base, ws.runs / "fixed").run()
    assert fixed["status"] == "completed"
    auto = json.loads(json.dumps(base))
    auto["train"]["micro_batch_size"] = "auto"
    monkeypatch.setattr(recipe_module, "resolve", resolving_to(2))
    cancel = threading.Event()
    assert Recipe(auto, ws.runs / "auto", events=CancelAt(3, cancel), cancel=cancel).run()["status"] == "cancelled"
    assert json.loads((ws.runs / "auto" / "run.json").read_text())["picks"]["microBatchSize"] == 2
    monkeypatch.setattr(recipe_module, "resolve", resolving_to(4))  # another device would pick 4
    assert Recipe(auto, ws.runs / "auto", resume=True).run()["status"] == "completed"
    assert json.loads((ws.runs / "auto" / "run.json").read_text())["picks"]["microBatchSize"] == 2
    for a, b in zip(metrics(ws.runs / "fixed"), metrics(ws.runs / "auto")):
        assert a["step"] == b["step"]
        for key in ("loss", "gradNorm", "evalLoss"):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (key, a, b)
