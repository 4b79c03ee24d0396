"""Training on the tiny model: the loss falls, accumulation is token-weighted, the adapter is a real PEFT
adapter that changes the model."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, short_records, write_jsonl

from qlora_engine.protocol import RUN_RECORD_KEYS, TRAIN_LINE_KEYS
from qlora_engine.recipe import Recipe


def test_loss_falls_over_50_steps(trained_run):
    losses = [m["loss"] for m in trained_run["metrics"] if m["type"] == "train"]
    assert len(losses) == 50
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 3.0, (first, last)  # from ~10.9 (uniform over 51k tokens) to well below
    rows = [m for m in trained_run["metrics"] if m["type"] == "train"]
    assert [r["step"] for r in rows] == list(range(1, 51))
    assert all(r["tokensPerSecond"] > 0 and r["gradNorm"] > 0 for r in rows)
    assert rows[0]["learningRate"] == 0.0 and rows[2]["learningRate"] == pytest.approx(1e-2)  # warmup 2, constant


def test_run_folder_contents(trained_run):
    run_dir = trained_run["run_dir"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["step"] == 50 and run["totalSteps"] == 50
    assert run["adapterPath"] == str(run_dir / "adapter") and run["error"] is None
    assert run["data"]["trainRecords"] == 6 and run["endedAt"]
    assert (run_dir / "config.yaml").read_text().startswith("model: ")
    # keep_checkpoints: 1 -> only the newest of step-25 and step-50 remains
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-50"]
    assert trained_run["end"]["checkpointPath"] == str(run_dir / "checkpoints" / "step-50")
    # The keys protocol/run-folder.ts declares (the mirror test checks the names against the TypeScript).
    assert tuple(run) == RUN_RECORD_KEYS
    for line in trained_run["metrics"]:
        # gpuMemoryPerDevice is written only when training on several devices
        assert line["type"] == "train" and tuple(line) == tuple(k for k in TRAIN_LINE_KEYS
                                                                if k != "gpuMemoryPerDevice"), line


def test_adapter_loads_with_peft_and_changes_logits(trained_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = trained_run["run_dir"] / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    base = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32).eval()
    ids = torch.tensor([[50256, 464, 3290, 318, 257, 1332, 13]])
    with torch.no_grad():
        before = base(input_ids=ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, str(adapter), is_trainable=False).eval()
        after = tuned(input_ids=ids).logits
        with tuned.disable_adapter():
            again = tuned(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-2
    torch.testing.assert_close(again, before)


def test_accumulation_is_token_weighted(ws):
    """1 micro-batch of 2 == 2 accumulated micro-batches of 1 (same rows, no dropout): same loss and gradients,
    although the two rows have different numbers of target tokens."""
    ends, metrics = [], []
    for name, mb, acc in (("a", 2, 1), ("b", 1, 2)):
        config = ws.config(lora={"dropout": 0.0}, train={"max_steps": 2, "micro_batch_size": mb,
                                                          "gradient_accumulation": acc})
        ends.append(Recipe(config, ws.runs / name).run())
        metrics.append([json.loads(x) for x in (ws.runs / name / "metrics.jsonl").read_text().splitlines()])
    assert [e["status"] for e in ends] == ["completed", "completed"]
    for a, b in zip(*metrics):
        assert a["step"] == b["step"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["gradNorm"] == pytest.approx(b["gradNorm"], rel=1e-4)


def test_packed_run_equals_unpacked_run(ws):
    """All records packed into one row == the same records as one padded batch: same loss and gradients."""
    write_jsonl(ws.train, short_records(4, dialogue_chars=60))
    results = {}
    for packing in (False, True):
        config = ws.config(packing=packing, max_length=512, lora={"dropout": 0.0}, data={"validation_split": 0.0},
                           train={"max_steps": 2, "micro_batch_size": 4})
        recipe = Recipe(config, ws.runs / f"packing-{packing}")
        summary = recipe.validate()
        assert recipe.run()["status"] == "completed"
        lines = (recipe.run_dir / "metrics.jsonl").read_text().splitlines()
        results[packing] = (summary, [json.loads(x) for x in lines])
    assert results[False][0]["trainSequences"] == 4 and results[True][0]["trainSequences"] == 1
    for a, b in zip(results[False][1], results[True][1]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["gradNorm"] == pytest.approx(b["gradNorm"], rel=1e-4)


def test_out_of_memory_ends_failed_with_advice(ws, monkeypatch):
    def oom(self):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Recipe, "_optimizer_step", oom)
    end = Recipe(ws.config(), ws.runs / "oom").run()
    assert end["status"] == "failed" and end["error"]["code"] == -32001
    assert end["error"]["message"].startswith("The GPU ran out of memory (CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "micro_batch_size" in end["error"]["remedy"] and "gradient_checkpointing" in end["error"]["remedy"]
    assert json.loads((ws.runs / "oom" / "run.json").read_text())["status"] == "failed"
