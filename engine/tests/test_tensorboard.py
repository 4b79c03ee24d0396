"""log.tensorboard: TensorBoard event files in the run folder, with the metrics.jsonl values, and a resumed run that
tells TensorBoard where it picked up."""
from __future__ import annotations

import builtins
import json
import struct
import threading

import pytest

from test_resume import CancelAt, metrics, resume_config

from qlora_engine.errors import BadConfig
from qlora_engine.recipe import Recipe


def read_events(path):
    """The Event protos of one TFRecord file (length, crc, data, crc)."""
    from tensorboardX.proto.event_pb2 import Event
    data = path.read_bytes()
    out, at = [], 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        event = Event()
        event.ParseFromString(data[at + 12:at + 12 + length])
        out.append(event)
        at += 12 + length + 4
    return out


def scalars(events):
    return {(v.tag, e.step): v.simple_value for e in events for v in e.summary.value}


def test_event_files_hold_the_runs_metrics_and_a_resume_marks_its_step(ws):
    config = resume_config(ws)
    config["log"] = {"tensorboard": True}
    cancel = threading.Event()
    run_dir = ws.runs / "tb"
    assert Recipe(config, run_dir, events=CancelAt(3, cancel), cancel=cancel).run()["status"] == "cancelled"
    assert Recipe(config, run_dir, resume=True).run()["status"] == "completed"

    files = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 2  # one per process
    first, second = (read_events(f) for f in files)
    logged = {**scalars(first), **scalars(second)}
    lines = metrics(run_dir)
    train = [m for m in lines if m["type"] == "train"]
    assert [s for (tag, s) in sorted(logged) if tag == "train/loss"] == [m["step"] for m in train] == [1, 2, 3, 4, 5, 6]
    for m in train:
        assert abs(logged[("train/loss", m["step"])] - m["loss"]) <= 1e-6 * max(1.0, abs(m["loss"]))
        assert abs(logged[("train/learning_rate", m["step"])] - m["learningRate"]) <= 1e-9 + 1e-6 * m["learningRate"]
    evals = [m for m in lines if m["type"] == "eval"]
    assert evals and [s for (tag, s) in sorted(logged) if tag == "eval/loss"] == [m["step"] for m in evals]
    # the resumed process starts its file at step 4 with a session start: TensorBoard drops older events from there
    starts = [e.step for e in second if e.HasField("session_log")]
    assert starts == [4] and min(e.step for e in second if e.summary.value) == 4


def test_without_the_switch_nothing_is_written(ws):
    config = resume_config(ws)
    config["train"]["max_steps"] = 1
    Recipe(config, ws.runs / "plain").run()
    assert not (ws.runs / "plain" / "tensorboard").exists()
    assert json.loads((ws.runs / "plain" / "run.json").read_text())["status"] == "completed"


def test_without_tensorboardx_the_config_is_refused_before_anything_is_written(ws, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboardx(name, *args, **kwargs):
        if name == "tensorboardX":
            raise ImportError("No module named 'tensorboardX'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_tensorboardx)
    config = resume_config(ws)
    config["log"] = {"tensorboard": True}
    with pytest.raises(BadConfig) as info:
        Recipe(config, ws.runs / "no-tb").validate()
    assert info.value.field == "log.tensorboard" and "pip install tensorboardX" in info.value.message
    assert not (ws.runs / "no-tb").exists()


def test_several_gpus_log_each_ones_memory(tmp_path):
    from qlora_engine.tensorboard_log import TensorBoardLog
    log = TensorBoardLog(tmp_path)
    GiB = 2**30
    log.progress({"step": 1, "loss": 2.0, "learningRate": 1e-4, "gpuMemoryBytes": 5 * GiB,
                  "gpuMemoryPerDevice": [4 * GiB, 5 * GiB]})
    log.end({})
    (events,) = (read_events(f) for f in tmp_path.glob("events.out.tfevents.*"))
    logged = scalars(events)
    assert [logged[(f"train/gpu_memory_gib/gpu{r}", 1)] for r in (0, 1)] == [4.0, 5.0]
    assert logged[("train/gpu_memory_gib", 1)] == 5.0
