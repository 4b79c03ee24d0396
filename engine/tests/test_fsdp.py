"""train.strategy fsdp on the CPU (gloo): two processes with the base model sharded by FSDP2 train the adapter one
process trains on the same records per step, evaluate in lockstep, and resume exactly (fsdp.py); a 4-bit model
(bitsandbytes' CPU quantization, 4-bit weights stored as float32) sharded the same way computes the loss and LoRA
gradients of the unsharded one; ranks with fewer passes in a step run empty ones (distributed.Group.passes)."""
from __future__ import annotations

import json
import threading

import pytest
import torch

from conftest import TINY
from test_distributed import adapter, assert_same_adapter, config_for, metrics_lines
from test_resume import CancelAt

from qlora_engine.config import parse_config
from qlora_engine.distributed import Group
from qlora_engine.fsdp import available
from qlora_engine.launch import LaunchedRun
from qlora_engine.passes import count_passes, plan_passes
from qlora_engine.recipe import Recipe
from qlora_engine.sequence import IGNORE, Sequence

pytestmark = pytest.mark.skipif(not available(), reason="this torch has no FSDP2 fully_shard with ignored_params")


def checkpoint_adapter(run_dir, step):
    from safetensors.torch import load_file
    return load_file(str(run_dir / "checkpoints" / f"step-{step}" / "adapter" / "adapter_model.safetensors"))


def test_fsdp_over_two_processes_trains_and_resumes_to_one_process_adapter(ws):
    # 3 rows a step: rank 0 trains two records, rank 1 one, and passes of max_length tokens hold one record of these
    # mostly, so rank 1 runs an empty pass to stay in lockstep (3 steps of 4 here). Gradient checkpointing,
    # evaluation and ROUGE generation run through the sharded layers too.
    config = config_for(ws, max_steps=4, micro_batch_size=1, gradient_accumulation=3, tokens_per_pass=128,
                        gradient_checkpointing=True, rouge_every=2, rouge_samples=2)
    config["eval"]["max_new_tokens"] = 8
    one = Recipe(config, ws.runs / "one").run()
    assert one["status"] == "completed", one

    sharded = {**config, "train": {**config["train"], "devices": 2, "strategy": "fsdp"}}
    cancel = threading.Event()
    events = CancelAt(2, cancel)
    part = LaunchedRun(sharded, ws.runs / "fsdp", devices=2, events=events, cancel=cancel)
    part.validate()
    end = part.run()
    assert end["status"] == "cancelled" and 2 <= end["step"] < 4, end
    # up to the cancel, the sharded run trained what one process trained
    assert_same_adapter(checkpoint_adapter(ws.runs / "one", 2), checkpoint_adapter(ws.runs / "fsdp", 2))

    resumed = LaunchedRun(sharded, ws.runs / "fsdp", devices=2, resume=True)
    assert resumed.validate() and resumed.start_step == end["step"]
    assert resumed.run()["status"] == "completed"
    assert_same_adapter(adapter(ws.runs / "one"), adapter(ws.runs / "fsdp"))
    record = json.loads((ws.runs / "fsdp" / "run.json").read_text())
    assert record["status"] == "completed" and record["step"] == 4
    assert record["picks"]["strategy"] == "fsdp" and record["picks"]["gradientCheckpointing"] is True
    assert record["picks"]["compile"] is False and record["picks"]["cudaGraphs"] is False
    one_train, two_train = metrics_lines(ws.runs / "one", "train"), metrics_lines(ws.runs / "fsdp", "train")
    assert [m["step"] for m in two_train] == [1, 2, 3, 4]
    assert all(abs(a["loss"] - b["loss"]) <= 1e-4 * max(1, abs(a["loss"])) for a, b in zip(one_train, two_train))
    assert [m["tokens"] for m in two_train[:2]] == [m["tokens"] for m in one_train[:2]]  # before the resume
    one_eval, two_eval = metrics_lines(ws.runs / "one", "eval"), metrics_lines(ws.runs / "fsdp", "eval")
    assert [m["step"] for m in two_eval] == [2, 4] and all(m["rougeRecords"] == 2 for m in two_eval)
    for a, b in zip(one_eval, two_eval):
        assert abs(a["evalLoss"] - b["evalLoss"]) <= 1e-4 * max(1, a["evalLoss"])
        assert a["rouge"] == pytest.approx(b["rouge"], abs=1e-6)  # the same greedy generations, in lockstep
    for rank in (0, 1):
        assert "rank %d of 2" % rank in (ws.runs / "fsdp" / "workers" / f"rank-{rank}.log").read_text()


def test_in_lockstep_every_rank_runs_as_many_passes_as_the_busiest():
    rows = [Sequence(list(range(n)), [IGNORE] + [5] * (n - 1), (n,)) for n in (90, 60, 80, 50, 70)]
    budget = 128
    # rank 0: records 90, 80, 70 -> 3 passes; rank 1: 60, 50 -> 1 pass
    counts = [count_passes(rows[r::2], budget) for r in (0, 1)]
    assert counts == [len(plan_passes(rows[r::2], budget)) for r in (0, 1)] == [3, 1]
    for rank in (0, 1):
        group = Group(rank, 2)
        assert len(group.passes(rows, budget)) == [3, 1][rank]  # data parallel: each its own
        group.lockstep = True
        passes = group.passes(rows, budget)
        assert len(passes) == 3
        real = plan_passes(rows[rank::2], budget)
        assert [p.input_ids.tolist() for p in passes[:len(real)]] == [p.input_ids.tolist() for p in real]
        assert all(p.targets.numel() == 0 and p.tokens == 1 for p in passes[len(real):])


def shard_4bit_on_rank(rank, rendezvous, out):
    """One of two gloo processes: the tiny model in nf4 (bitsandbytes on the CPU) with LoRA, unsharded and sharded."""
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM
    from qlora_engine import varlen
    from qlora_engine.fsdp import shard
    from qlora_engine.model import add_lora, quantization_config
    from qlora_engine.passes import pass_loss_sum

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        config = parse_config({"model": str(TINY), "data": {"train": "/d/train.jsonl"}, "template": "/d/t.prompt.yaml",
                               "quantization": "nf4", "compute_dtype": "float32",
                               "lora": {"dropout": 0.0, "target_modules": ["q_proj", "dense", "fc1", "fc2"]},
                               "train": {"strategy": "fsdp", "devices": 2}})
        base = AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32, device_map={"": "cpu"},
                                                    quantization_config=quantization_config(config, torch.float32))
        model = add_lora(base, config, checkpointing=True)
        with torch.no_grad():  # LoRA B starts at zero; nonzero, every LoRA weight gets a gradient
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        storage = model.get_base_model().model.layers[0].mlp.fc1.base_layer.weight.dtype
        generator = torch.Generator().manual_seed(rank)  # each rank its own records: the gathers must not mix them
        rows = [Sequence(torch.randint(0, 51200, (n,), generator=generator).tolist(),
                         [IGNORE] + torch.randint(0, 51200, (n - 1,), generator=generator).tolist(), (n,))
                for n in (9, 13)]
        lora = [p for p in model.parameters() if p.requires_grad]
        losses, grads = [], []
        model.train()
        for sharded in (False, True):  # the same model before and after sharding it
            if sharded:
                shard(model, torch.device("cpu"), 2)
            with varlen.attention(model):
                loss = pass_loss_sum(model, plan_passes(rows, 64)[0], loss_chunk=8)
                loss.backward()
            losses.append(float(loss.detach()))
            grads.append([p.grad.clone() for p in lora])
            model.zero_grad(set_to_none=True)
        weight = model.get_base_model().model.layers[0].mlp.fc1.base_layer.weight
        worst = max(float((a - b).abs().max()) for a, b in zip(*grads))
        (out / f"rank-{rank}.json").write_text(json.dumps({
            "storage": str(storage), "local": list(weight.to_local().shape), "global": list(weight.shape),
            "losses": losses, "worst": worst}))
    finally:
        dist.destroy_process_group()


def test_a_4bit_model_sharded_computes_the_unsharded_loss_and_gradients(tmp_path):
    pytest.importorskip("bitsandbytes")
    import torch.multiprocessing as mp
    mp.spawn(shard_4bit_on_rank, args=(tmp_path / "rendezvous", tmp_path), nprocs=2)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank-{rank}.json").read_text())
        assert got["storage"] == "torch.float32"  # bnb_4bit_quant_storage = compute dtype: FSDP shards floats
        assert got["local"][0] * 2 == got["global"][0]  # this rank holds half of the packed 4-bit weight
        assert got["losses"][0] == got["losses"][1] and got["worst"] <= 1e-6, got


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_fsdp_qlora_on_two_gpus_trains_the_ddp_adapter(ws):
    """NF4 on two GPUs (NCCL): the base sharded with its 4-bit weights in bf16 storage trains the adapter the
    replicated base trains, and each GPU's peak memory is reported."""
    from test_distributed import Progress
    config = config_for(ws, max_steps=4, devices=2, compile=False, cuda_graphs=False, gradient_checkpointing=True)
    config["quantization"] = "nf4"
    for strategy in ("ddp", "fsdp"):
        progress = Progress()
        run = LaunchedRun({**config, "train": {**config["train"], "strategy": strategy}}, ws.runs / strategy,
                          devices=2, events=progress)
        run.validate()
        assert run.run()["status"] == "completed"
        assert json.loads((ws.runs / strategy / "run.json").read_text())["picks"]["strategy"] == strategy
        assert all(len(p["gpuMemoryPerDevice"]) == 2 and min(p["gpuMemoryPerDevice"]) > 0 for p in progress.rows)
    assert_same_adapter(adapter(ws.runs / "ddp"), adapter(ws.runs / "fsdp"), tolerance=1e-3)
