"""GPU tests (marker `gpu`, deselected by default): run with `pytest -m gpu` on a CUDA machine with bitsandbytes.

They cover what the CPU suite cannot: 4-bit loading, k-bit preparation, the paged 8-bit optimizer, CUDA RNG in
checkpoints, and train/plan's estimate against the measured torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
import torch

from conftest import PHI2, short_records, write_jsonl

from qlora_engine.generate import Generator
from qlora_engine.plan import estimate
from qlora_engine.recipe import Events, Recipe

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


class Record(Events):
    def __init__(self, cancel_at: int = 0, cancel: threading.Event = None) -> None:
        self.progress_rows, self.cancel_at, self.cancel = [], cancel_at, cancel

    def progress(self, params):
        self.progress_rows.append(params)
        if self.cancel_at and params["step"] == self.cancel_at:
            self.cancel.set()


def qlora_config(ws, **extra):
    write_jsonl(ws.train, short_records(16, dialogue_chars=200))
    return ws.config(quantization="nf4", max_length=256, **{
        "train": {"max_steps": 6, "micro_batch_size": 2, "gradient_accumulation": 2, "optimizer": "paged_adamw_8bit",
                  "gradient_checkpointing": True, "eval_every": 3, "save_every": 2, **extra.pop("train", {})},
        **extra})


def test_qlora_trains_and_generates(ws):
    events = Record()
    end = Recipe(qlora_config(ws), ws.runs / "q", events=events).run()
    assert end["status"] == "completed", end
    assert all(r["gpuMemoryBytes"] > 0 and r["loss"] == r["loss"] for r in events.progress_rows)
    out = Generator().generate({"config": qlora_config(ws), "adapter": end["adapterPath"],
                                "records": [{"dialogue": "A: hi\nB: hello"}] * 3, "maxNewTokens": 8,
                                "temperature": 0, "topP": 1, "seed": 0, "batchSize": 3})
    assert len(out["completions"]) == 3


def test_decode_graphs_give_the_eager_loop_and_transformers_tokens(ws):
    """NF4 tiny model + adapter: the captured decode steps give the same greedy tokens as the same loop run eagerly,
    and the first tokens of transformers' generate on nearly every row (fp16 kernels differ in rounding), for the
    adapter, the base and rows mixing both."""
    from qlora_engine import decode
    end = Recipe(qlora_config(ws), ws.runs / "d", events=Record()).run()
    generator = Generator()
    config = qlora_config(ws)
    records = [{"dialogue": r["dialogue"]} for r in short_records(12, dialogue_chars=160)]
    generator.generate({"config": config, "adapter": end["adapterPath"], "records": records[:1], "maxNewTokens": 1})
    model, tok = generator._model, generator._tokenizer
    from qlora_engine.generate import render_prompts
    from qlora_engine.template import load_template
    encoded = tok(render_prompts(load_template(config["template"]), records), padding=True, return_tensors="pt")

    def run(graphs, **kw):
        with torch.inference_mode():
            return decode.decode(model, encoded["input_ids"], encoded["attention_mask"], max_new=24, eos=None,
                                 pad=tok.pad_token_id, graphs=graphs, **kw)

    rows = [i % 3 != 0 for i in range(len(records))]
    for scope, kw in ((torch.inference_mode(), {}), (model.disable_adapter(), {}),
                      (torch.inference_mode(), {"adapter_rows": rows})):
        with scope:
            graphs = decode.DecodeGraphs()
            captured = run(graphs, **kw)
            assert captured.captured and graphs.captured == 1
            assert run(graphs, **kw).tokens == captured.tokens  # the graph replays again from a reset cache
            original = decode._graphs_possible
            decode._graphs_possible = lambda m: False
            try:
                eager = run(decode.DecodeGraphs(), **kw)
            finally:
                decode._graphs_possible = original
            assert not eager.captured and eager.tokens == captured.tokens
            if not kw:
                with torch.inference_mode():
                    out = model.generate(**{k: v.cuda() for k, v in encoded.items()}, max_new_tokens=24,
                                         do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None)
                theirs = out[:, encoded["input_ids"].shape[1]:].tolist()
                same = sum(a[:16] == b[:16] for a, b in zip(captured.tokens, theirs))
                assert same >= 0.9 * len(records), (same, len(records))

    # Dense weights and the adapter merged into them: the same logits as bitsandbytes' 4-bit kernels with the LoRA
    # layers, up to fp16 rounding (compared on logits: a barely trained tiny model has near-ties that rounding flips).
    ids = encoded["input_ids"].cuda()
    attention = encoded["attention_mask"].cuda()
    with torch.inference_mode():
        four_bit = model(input_ids=ids, attention_mask=attention).logits.float()
        scale = four_bit.abs().max()
        for merge in (False, True):
            graphs = decode.DecodeGraphs(dense=True, merge=merge)
            variant = ("merged", tuple(model.active_adapters)) if merge else "plain"
            with decode._dense_linears(graphs.weights(model, variant)):
                dense = model(input_ids=ids, attention_mask=attention).logits.float()
            assert (dense - four_bit).abs().max() < 2e-2 * scale, (merge, (dense - four_bit).abs().max(), scale)
        # compiled steps: replayed, not fallen back, and the uncompiled steps' tokens on nearly every row (Inductor
        # fuses element-wise ops in fp32, so fp16 rounding may differ at a near-tie)
        plain = run(decode.DecodeGraphs(dense=True, merge=True))
        graphs = decode.DecodeGraphs(dense=True, merge=True, compile=True)
        got = run(graphs)
        assert got.captured and graphs.compile
        assert run(graphs).tokens == got.tokens  # replays from a reset cache
        same = sum(a[:8] == b[:8] for a, b in zip(got.tokens, plain.tokens))
        assert same >= 0.75 * len(records), (same, len(records))


LAYER_MODES = {  # train settings of each way the decoder layers run
    "eager": {"compile": False, "cuda_graphs": False},
    "compiled": {"compile": True, "gradient_checkpointing": False, "cuda_graphs": False},  # dropout in Inductor's kernels
    "graphs": {"compile": True, "gradient_checkpointing": False, "cuda_graphs": True},  # ... replayed as CUDA graphs
}


@pytest.mark.parametrize("mode", sorted(LAYER_MODES))
def test_qlora_resume_is_exact_on_gpu(ws, mode):
    config = qlora_config(ws, lora={"dropout": 0.1}, train={"optimizer": "adamw_torch_fused", **LAYER_MODES[mode]})
    Recipe(config, ws.runs / "full").run()
    cancel = threading.Event()
    assert Recipe(config, ws.runs / "part", events=Record(3, cancel), cancel=cancel).run()["status"] == "cancelled"
    assert Recipe(config, ws.runs / "part", resume=True).run()["status"] == "completed"
    rows = [[json.loads(x) for x in (ws.runs / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("full", "part")]
    for a, b in zip(*rows):
        assert a["step"] == b["step"]
        for key in ("loss", "gradNorm", "evalLoss"):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-5), (a, b)


def test_cuda_graph_passes_train_as_the_eager_passes(ws):
    """The same run with the passes replayed as CUDA graphs and run eagerly: the same losses step by step (no
    dropout: the two draw different random numbers), and the graphs were really recorded and replayed."""
    from qlora_engine import step_graphs
    recorded = []
    original = step_graphs.StepGraphs._record

    def spy(self, batch):
        recorded.append(batch.shape)
        return original(self, batch)

    losses = {}
    for graphs in (False, True):
        config = qlora_config(ws, lora={"dropout": 0.0}, train={
            "max_steps": 12, "optimizer": "adamw_torch_fused", "compile": True, "gradient_checkpointing": False,
            "cuda_graphs": graphs, "micro_batch_size": 1, "gradient_accumulation": 2, "eval_every": 0})
        step_graphs.StepGraphs._record = spy
        try:
            Recipe(config, ws.runs / f"graphs-{graphs}").run()
        finally:
            step_graphs.StepGraphs._record = original
        rows = [json.loads(x) for x in (ws.runs / f"graphs-{graphs}" / "metrics.jsonl").read_text().splitlines()]
        losses[graphs] = [r["loss"] for r in rows if "loss" in r]
    assert recorded, "no pass was recorded"
    assert len(losses[True]) == len(losses[False]) == 12
    for eager, replayed in zip(losses[False], losses[True]):
        assert replayed == pytest.approx(eager, rel=5e-3)


LAYERS = int(os.environ.get("QLORA_GPU_PLAN_LAYERS", "8"))


@pytest.fixture(scope="module")
def phi_width_model(tmp_path_factory):
    """Phi-2's width and vocabulary with 8 layers (QLORA_GPU_PLAN_LAYERS=32: all of Phi-2) and random bf16
    weights: real-sized layers, quick to build."""
    from transformers import PhiConfig, PhiForCausalLM
    raw = json.loads((PHI2 / "config.json").read_text())
    for key in ("auto_map", "_name_or_path", "transformers_version", "torch_dtype"):
        raw.pop(key, None)
    out = tmp_path_factory.mktemp("phi8")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = PhiForCausalLM(PhiConfig(**{**raw, "num_hidden_layers": LAYERS})).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json",
                 "special_tokens_map.json"):
        shutil.copy(PHI2 / name, out / name)
    return out


@pytest.mark.parametrize("quantization,checkpointing,batch,length", [
    ("nf4", True, 1, 2048), ("nf4", False, 1, 1024), ("nf4", True, 4, 512), ("none", True, 1, 2048),
    ("none", False, 1, 1024)])
def test_plan_is_close_to_measured_peak(phi_width_model, ws, quantization, checkpointing, batch, length):
    # Records exactly max_length tokens long, so every micro-batch is batch x length as the plan assumes.
    words = length - 40
    records = [{"dialogue": " ".join(["hello"] * words), "summary": "ok"} for _ in range(batch * 3)]
    config = ws.config(model=str(phi_width_model), quantization=quantization, max_length=length,
                       lora={"r": 32, "alpha": 32, "dropout": 0.05},
                       data={"validation_split": 0.0},
                       train={"max_steps": 3, "micro_batch_size": batch, "gradient_accumulation": 1,
                              "optimizer": "paged_adamw_8bit", "gradient_checkpointing": checkpointing})
    write_jsonl(ws.train, records)
    events = Record()
    end = Recipe(config, ws.runs / "m", events=events).run()
    assert end["status"] == "completed", end
    measured = max(r["gpuMemoryBytes"] for r in events.progress_rows)
    plan = estimate(config)
    ratio = plan["peakBytes"] / measured
    print(f"\nplan vs measured ({LAYERS} layers, {quantization}, checkpointing={checkpointing}, {batch}x{length}): "
          f"plan {plan['peakBytes'] / 2**30:.2f} GiB, measured {measured / 2**30:.2f} GiB, ratio {ratio:.2f}")
    for term in plan["terms"]:
        print(f"  {term['bytes'] / 2**30:7.3f} GiB  {term['name']}")
    assert 0.85 < ratio < 1.3


def test_out_of_memory_for_real_ends_failed_and_frees_the_gpu(phi_width_model, ws):
    """A pass far larger than a 3 GiB cap: a real CUDA OOM ends the run `failed` with OutOfMemory naming the
    settings that fix it, and the same process trains again afterwards (the memory was given back)."""
    from qlora_engine.protocol import ERROR_CODES
    words = 2048 - 40
    write_jsonl(ws.train, [{"dialogue": " ".join(["hello"] * words), "summary": "ok"} for _ in range(8)])
    base = dict(model=str(phi_width_model), quantization="nf4", max_length=2048, data={"validation_split": 0.0})
    big = ws.config(**base, train={"max_steps": 2, "micro_batch_size": 8, "gradient_accumulation": 1,
                                   "tokens_per_pass": 16384, "gradient_checkpointing": False, "compile": False})
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(3 * 2**30 / total)
    try:
        end = Recipe(big, ws.runs / "oom").run()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert end["status"] == "failed", end
    assert end["error"]["code"] == ERROR_CODES["OutOfMemory"], end["error"]
    assert "micro_batch_size" in end["error"]["remedy"] and "gradient_checkpointing" in end["error"]["remedy"]
    record = json.loads((ws.runs / "oom" / "run.json").read_text())
    assert record["status"] == "failed" and record["error"]["code"] == ERROR_CODES["OutOfMemory"]
    assert torch.cuda.memory_allocated() < 2**28, torch.cuda.memory_allocated()  # nothing of the run is held
    small = ws.config(**base, train={"max_steps": 1, "micro_batch_size": 1, "gradient_accumulation": 1,
                                     "gradient_checkpointing": True, "compile": False})
    assert Recipe(small, ws.runs / "after").run()["status"] == "completed"
