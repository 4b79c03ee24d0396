"""The engine as the server runs it: a subprocess speaking JSON-RPC over stdio."""
from __future__ import annotations

import json
import signal

import pytest

from conftest import short_records, write_jsonl
from rpc_client import EngineProcess

from qlora_engine.errors import BadDataset


@pytest.fixture
def engine():
    proc = EngineProcess()
    yield proc
    proc.close()


def test_end_to_end(engine, ws):
    write_jsonl(ws.train, short_records(8, dialogue_chars=100))
    init = engine.request("initialize", {"clientName": "pytest"})["result"]
    assert init["python"]["version"] and init["torch"]["available"] and "devices" in init["cuda"]

    # Ctrl-C in a terminal hits the engine too; it must survive (the server cancels cooperatively).
    engine.proc.send_signal(signal.SIGINT)
    assert engine.request("initialize", {"clientName": "pytest"})["result"]["platform"]

    assert engine.request("no/such/method", {})["error"]["code"] == -32601
    assert engine.request("train/start", {"config": {}})["error"]["code"] == -32602

    # Bad input: the request fails with code + location, and no run folder appears.
    bad = ws.config(data={"train": str(ws.root / "nope.jsonl")})
    error = engine.request("train/start", {"runDir": str(ws.runs / "bad"), "config": bad, "resume": False})["error"]
    assert error["code"] == -32004
    assert error["data"] == {"code": -32004, "message": error["message"], "file": str(ws.root / "nope.jsonl"),
                             "field": "data.train", "remedy": BadDataset.REMEDY}
    assert not (ws.runs / "bad").exists()

    # A short run to the end.
    config = ws.config(max_length=128, train={"max_steps": 4, "save_every": 2, "eval_every": 2, "log_every": 1,
                                              "rouge_every": 4, "rouge_samples": 1}, eval={"max_new_tokens": 3})
    result = engine.request("train/start", {"runDir": str(ws.runs / "ok"), "config": config, "resume": False})["result"]
    assert result["runId"] == "ok" and result["runDir"] == str(ws.runs / "ok")
    assert result["totalSteps"] == 4 and result["startStep"] == 0
    assert result["data"]["trainRecords"] + result["data"]["validationRecords"] == 8
    end = engine.notification("train/didEnd", lambda p: p["runId"] == "ok", timeout=300)
    assert end["status"] == "completed" and end["error"] is None and end["step"] == 4
    assert [p["step"] for p in engine.of("train/didProgress", "ok")] == [1, 2, 3, 4]
    assert [p["step"] for p in engine.of("train/didCheckpoint", "ok")] == [2, 4]
    evals = engine.of("train/didEval", "ok")
    assert [p["step"] for p in evals] == [2, 4]
    assert "rouge" not in evals[0] and set(evals[1]["rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert evals[1]["rougeRecords"] == 1
    stages = [p["stage"] for p in engine.of("train/didStage", "ok")]
    assert stages == ["loading-data", "loading-model", "training", "saving"]
    progress = engine.of("train/didProgress", "ok")[-1]
    assert set(progress) == {"runId", "step", "totalSteps", "epoch", "loss", "learningRate", "gradNorm",
                             "tokensPerSecond", "tokens", "gpuMemoryBytes", "elapsedSeconds", "etaSeconds"}
    assert end["adapterPath"] == str(ws.runs / "ok" / "adapter")
    assert (ws.runs / "ok" / "adapter" / "adapter_model.safetensors").is_file()
    assert (ws.runs / "ok" / "adapter" / "adapter_config.json").is_file()

    # A long run: generation and a second run are refused while it trains; cancel ends it with a checkpoint.
    long = ws.config(max_length=128, train={"max_steps": 10000, "save_every": 0})
    started = engine.request("train/start", {"runDir": str(ws.runs / "long"), "config": long, "resume": False})
    assert started["result"]["runId"] == "long"
    engine.notification("train/didProgress", lambda p: p["runId"] == "long" and p["step"] >= 2, timeout=300)
    gen = {"config": long, "adapter": None, "records": [{"dialogue": "A: hi"}], "maxNewTokens": 3,
           "temperature": 0, "topP": 1, "seed": 0, "batchSize": 1}
    assert engine.request("generate", gen)["error"]["code"] == -32009
    second = engine.request("train/start", {"runDir": str(ws.runs / "x"), "config": long, "resume": False})
    assert second["error"]["code"] == -32009
    assert engine.request("train/cancel", {"runId": "other"})["result"] == {"cancelling": False}
    assert engine.request("train/cancel", {"runId": "long"})["result"] == {"cancelling": True}
    end = engine.notification("train/didEnd", lambda p: p["runId"] == "long", timeout=300)
    assert end["status"] == "cancelled" and end["step"] >= 2
    assert end["checkpointPath"] == str(ws.runs / "long" / "checkpoints" / f"step-{end['step']}")
    assert json.loads((ws.runs / "long" / "run.json").read_text())["status"] == "cancelled"
    assert engine.request("train/cancel", {"runId": "long"})["result"] == {"cancelling": False}

    # Resume it for a couple more steps (max_steps lowered), then generate with its adapter.
    resume_cfg = ws.config(max_length=128, train={"max_steps": end["step"] + 2, "save_every": 0})
    resumed = engine.request("train/start", {"runDir": str(ws.runs / "long"), "config": resume_cfg,
                                             "resume": True})["result"]
    assert resumed["startStep"] == end["step"]
    final = engine.notification("train/didEnd", lambda p: p["runId"] == "long" and p["status"] != "cancelled",
                                timeout=300)
    assert final["status"] == "completed" and final["step"] == end["step"] + 2

    out = engine.request("generate", {**gen, "adapter": final["adapterPath"]})["result"]
    assert len(out["completions"]) == 1 and out["completions"][0]["newTokens"] >= 1

    plan = engine.request("train/plan", {"config": config})["result"]
    assert plan["baseParameters"] > 0 and plan["loraParameters"] > 0

    assert engine.request("shutdown")["result"] is None
    assert engine.proc.wait(timeout=60) == 0
    assert not engine.framing_errors, engine.framing_errors


def test_exits_when_stdin_closes(engine):
    assert "result" in engine.request("initialize", {"clientName": "pytest"})
    engine.proc.stdin.close()
    assert engine.proc.wait(timeout=60) == 0
    assert not engine.framing_errors


def test_env_flag_prints_the_report(capsys):
    from qlora_engine.__main__ import main
    assert main(["--env"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"python", "platform", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "cuda",
                           "nvidia"}
    assert report["nvidia"]["driver"] is None or report["nvidia"]["driver"][0].isdigit()
    assert isinstance(report["torch"]["mps"], bool)
    assert report["torch"]["available"] and report["cuda"]["available"] == bool(report["cuda"]["devices"])
