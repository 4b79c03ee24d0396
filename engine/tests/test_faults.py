"""Faults injected for real into the run folder: a full disk while writing a checkpoint, a truncated checkpoint,
and a second writer on the same run folder. Nothing already on disk is lost, and each ends with a named error."""
from __future__ import annotations

import errno
import json
import threading

import pytest
import torch

from conftest import short_records, write_jsonl

from qlora_engine import checkpoint
from qlora_engine.errors import Busy, CheckpointDamaged
from qlora_engine.locks import run_folder_lock
from qlora_engine.protocol import ERROR_CODES
from qlora_engine.recipe import Events, Recipe


def config(ws, **train):
    write_jsonl(ws.train, short_records(8, dialogue_chars=100))
    return ws.config(lora={"dropout": 0.1}, data={"validation_split": 0.0}, max_length=128,
                     train={"max_steps": 6, "micro_batch_size": 2, "gradient_accumulation": 1, "save_every": 2,
                            "keep_checkpoints": 5, **train})


def adapter(run_dir, name="adapter"):
    from safetensors.torch import load_file
    return load_file(str(run_dir / name / "adapter_model.safetensors"))


def test_disk_full_while_writing_a_checkpoint(ws, monkeypatch):
    cfg = config(ws)
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            calls["n"] += 1
            if calls["n"] == 2:  # the second checkpoint (step 4) hits a full disk halfway through
                raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    run_dir = ws.runs / "full"
    end = Recipe(cfg, run_dir).run()
    assert end["status"] == "failed"
    error = end["error"]
    assert error["code"] == ERROR_CODES["WriteFailed"] and error["file"] == str(run_dir / "checkpoints")
    assert "No space left on device" in error["message"] and "step-2 is intact" in error["message"]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-2"]  # no half-written step-4
    checkpoint.verify(run_dir / "checkpoints" / "step-2")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    # Space is back: the run resumes from step 2 and ends as an uninterrupted run does.
    monkeypatch.setattr(torch, "save", real_save)
    assert Recipe(cfg, run_dir, resume=True).run()["status"] == "completed"
    assert Recipe(cfg, ws.runs / "whole").run()["status"] == "completed"
    for key, value in adapter(ws.runs / "whole").items():
        torch.testing.assert_close(adapter(run_dir)[key], value)


class CancelAt(Events):
    def __init__(self, step, cancel):
        self.step, self.cancel = step, cancel

    def progress(self, params):
        if params["step"] == self.step:
            self.cancel.set()


def test_a_truncated_checkpoint_is_named_and_the_previous_one_offered(ws):
    cfg = config(ws)
    run_dir = ws.runs / "trunc"
    cancel = threading.Event()
    assert Recipe(cfg, run_dir, events=CancelAt(5, cancel), cancel=cancel).run()["status"] == "cancelled"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-2", "step-4", "step-5"]
    damaged = run_dir / "checkpoints" / "step-5" / "adapter" / "adapter_model.safetensors"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a crash mid-copy, say
    with pytest.raises(CheckpointDamaged) as info:
        Recipe(cfg, run_dir, resume=True).validate()
    assert info.value.file == str(damaged)
    assert "step-5 is damaged" in info.value.message and "previous complete checkpoint is step-4" in info.value.message
    (run_dir / "checkpoints" / "step-5").rename(ws.root / "step-5-damaged")  # what the message says to do
    assert Recipe(cfg, run_dir, resume=True).run()["status"] == "completed"


def test_a_second_writer_of_a_run_folder_is_refused(ws):
    cfg = config(ws, max_steps=2)
    run_dir = ws.runs / "locked"
    assert Recipe(cfg, run_dir).run()["status"] == "completed"
    cfg["train"]["max_steps"] = 4
    held = run_folder_lock(run_dir, "another run")  # as another engine process training this folder would
    try:
        end = Recipe(cfg, run_dir, resume=True).run()
        assert end["status"] == "failed" and end["error"]["code"] == ERROR_CODES["Busy"]
        assert "another run" in end["error"]["message"] and str(run_dir) in end["error"]["message"]
        assert json.loads((run_dir / "run.json").read_text())["status"] == "completed", "the refused run wrote run.json"
        with pytest.raises(Busy):
            run_folder_lock(run_dir, "a third")
    finally:
        held.release()
    assert Recipe(cfg, run_dir, resume=True).run()["status"] == "completed"  # free again
