"""train.devices > 1 on the CPU (gloo): two processes started by torchrun give the adapter one process gives for
the same records per step, resume exactly, and a killed process fails the run cleanly (launch.py, worker.py,
distributed.py)."""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import short_records, write_jsonl
from test_resume import CancelAt

from qlora_engine.distributed import Group
from qlora_engine.events import Events
from qlora_engine.launch import LaunchedRun
from qlora_engine.recipe import Recipe


def config_for(ws, **train):
    write_jsonl(ws.train, short_records(16, dialogue_chars=100))
    # dropout 0: each process draws its own dropout masks, so only without dropout are the two runs equal.
    return ws.config(lora={"dropout": 0.0}, data={"validation_split": 0.25}, max_length=128,
                     train={"max_steps": 4, "micro_batch_size": 2, "gradient_accumulation": 2, "eval_every": 2,
                            "save_every": 2, "keep_checkpoints": 5, "warmup_steps": 1, **train})


def adapter(run_dir):
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def metrics_lines(run_dir, kind):
    return [m for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if m["type"] == kind]


def train_losses(run_dir):
    return [m["loss"] for m in metrics_lines(run_dir, "train")], [m["evalLoss"] for m in metrics_lines(run_dir, "eval")]


def assert_same_adapter(a, b, tolerance=1e-5):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=tolerance, rtol=1e-4), (name, (a[name] - b[name]).abs().max())


class Progress(Events):
    def __init__(self):
        self.rows = []

    def progress(self, params):
        self.rows.append(params)


def test_two_processes_train_the_adapter_one_process_trains(ws):
    config = config_for(ws)
    one = Recipe(config, ws.runs / "one").run()
    assert one["status"] == "completed"
    two_config = {**config, "train": {**config["train"], "devices": 2}}
    progress = Progress()
    run = LaunchedRun(two_config, ws.runs / "two", devices=2, events=progress)
    assert run.validate()["trainRecords"] == 12
    end = run.run()
    assert end["status"] == "completed", end
    assert end["adapterPath"] == str(ws.runs / "two" / "adapter")
    assert_same_adapter(adapter(ws.runs / "one"), adapter(ws.runs / "two"))
    (train1, eval1), (train2, eval2) = train_losses(ws.runs / "one"), train_losses(ws.runs / "two")
    assert len(train2) == 4 and len(eval2) == 2
    assert all(abs(a - b) <= 1e-4 * max(1, abs(a)) for a, b in zip(train1 + eval1, train2 + eval2))
    record = json.loads((ws.runs / "two" / "run.json").read_text())
    assert record["status"] == "completed" and record["step"] == 4
    # tokens (and so tokens/s) count every process's rows: the same as one process training all of them
    one_lines, two_lines = metrics_lines(ws.runs / "one", "train"), metrics_lines(ws.runs / "two", "train")
    assert [m["tokens"] for m in two_lines] == [m["tokens"] for m in one_lines] and one_lines[0]["tokens"] > 0
    # several devices: each one's GPU memory, in the event and metrics.jsonl (None here: CPU processes); one: absent
    assert [(p["step"], p["gpuMemoryPerDevice"], p["gpuMemoryBytes"]) for p in progress.rows] == [
        (step, None, None) for step in (1, 2, 3, 4)]
    assert all(m["gpuMemoryPerDevice"] is None for m in two_lines)
    assert not any("gpuMemoryPerDevice" in m for m in one_lines)
    for rank in (0, 1):
        assert f"rank {rank} of 2" in (ws.runs / "two" / "workers" / f"rank-{rank}.log").read_text()


def test_a_cancelled_two_process_run_resumes_to_the_same_adapter(ws):
    config = config_for(ws, max_steps=6, devices=2)
    full = LaunchedRun(config, ws.runs / "full", devices=2)
    full.validate()
    assert full.run()["status"] == "completed"

    cancel = threading.Event()
    part = LaunchedRun(config, ws.runs / "part", devices=2, events=CancelAt(2, cancel), cancel=cancel)
    part.validate()
    end = part.run()
    assert end["status"] == "cancelled" and 2 <= end["step"] < 6, end
    assert json.loads((ws.runs / "part" / "run.json").read_text())["status"] == "cancelled"
    resumed = LaunchedRun(config, ws.runs / "part", devices=2, resume=True)
    assert resumed.validate() and resumed.start_step == end["step"]
    assert resumed.run()["status"] == "completed"
    assert_same_adapter(adapter(ws.runs / "full"), adapter(ws.runs / "part"), tolerance=1e-6)


class KillRank1(Events):
    """Kills rank 1 once training has started (its pid is in its log)."""

    def __init__(self, run_dir):
        self.run_dir, self.killed = run_dir, None

    def progress(self, params):
        if self.killed is None:
            text = (self.run_dir / "workers" / "rank-1.log").read_text()
            self.killed = int(re.search(r"rank 1 of 2, pid (\d+)", text).group(1))
            os.kill(self.killed, signal.SIGKILL)


def test_a_killed_process_fails_the_run_naming_its_rank_and_stops_the_others(ws):
    config = config_for(ws, max_steps=400, devices=2, eval_every=0, save_every=0)
    events = KillRank1(ws.runs / "killed")
    run = LaunchedRun(config, ws.runs / "killed", devices=2, events=events)
    run.validate()
    started = time.monotonic()
    end = run.run()
    assert events.killed is not None
    assert end["status"] == "failed" and end["adapterPath"] is None
    assert "rank 1 of 2" in end["error"]["message"] and "signal 9" in end["error"]["message"], end["error"]
    record = json.loads((ws.runs / "killed" / "run.json").read_text())
    assert record["status"] == "failed" and "rank 1" in record["error"]["message"]
    assert time.monotonic() - started < 120  # rank 0 did not sit out the collective timeout
    with pytest.raises(ProcessLookupError):
        os.kill(events.killed, 0)


def gather_on_rank(rank, rendezvous, out):
    """One of two gloo processes: its rank's value gathered, as at a log step."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    group = Group(rank, 2)
    try:
        cpu = torch.device("cpu")
        # 80 GiB + rank: past 2**31 and float32's exact integers, as GPU memory is
        gathered = group.gather_int(80 * 2**30 + rank, cpu)
        (out / f"rank-{rank}.json").write_text(json.dumps({"gathered": gathered, "peaks": group.memory_peaks(cpu)}))
    finally:
        group.close()


def test_gather_int_gives_every_rank_each_ranks_value_in_rank_order(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(gather_on_rank, args=(tmp_path / "rendezvous", tmp_path), nprocs=2)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank-{rank}.json").read_text())
        assert got == {"gathered": [80 * 2**30, 80 * 2**30 + 1], "peaks": None}  # no GPU memory on the CPU
    assert Group().gather_int(7, torch.device("cpu")) == [7]  # one process: its own value, no collective
