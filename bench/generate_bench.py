"""Generation speed (issue 11): the reference stack's `model.generate` (tutorial inference: NF4 base + PeftModel
adapter, is_trainable=False), with transformers' dynamic cache and with its static cache (which transformers
compiles), against the engine's `generate` request (static cache + CUDA-graph steps, engine/qlora_engine/decode.py):
`engine` as it picks (4-bit weights dequantized once where the GPU has room, the adapter folded into a second dense
copy when every row runs it, the decoder layers compiled before capture), `engine-uncompiled` (the same without
compiling, as QLORA_STUDIO_COMPILE_DECODE=0), `engine-unmerged` (not merged), `engine-4bit` (bitsandbytes' kernels,
not merged), `engine-no-graphs` (the same loop run eagerly).

Random Phi-2-shape weights (bench/make_random_model.py) and a random LoRA adapter: speed depends on shapes only.
One stack per process (`--stack`), so each gets its own time limit; one JSON line per measurement:

    python bench/generate_bench.py --stack reference --model /tmp/phi2-random --out OUT   # also writes OUT/parity.json
    python bench/generate_bench.py --stack reference-static --model /tmp/phi2-random --batches 1,16
    python bench/generate_bench.py --stack engine --model /tmp/phi2-random --out OUT      # reads OUT/parity.json

Prompts: DialogSum dialogues in the tutorial's inference prompt, cut to PROMPT_TOKENS tokens (the issue's 300-token
prompt), 100 new tokens (`min_new_tokens` for the reference, so a random model's early EOS cannot shorten it; the
engine's rows are counted by their own `newTokens`). Parity: the reference's greedy tokens for the first `--parity`
prompts (batches of 16) against the engine's decode loop fed the same token ids, first 32 tokens compared.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "engine"))

import torch  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig  # noqa: E402

PROMPT = "Instruct: Summarize the following conversation.\n{dialogue}\nOutput:\n"
NEW_TOKENS = 100
PROMPT_TOKENS = 300
PARITY_TOKENS = 32


def make_adapter(model_dir: str, out: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, use_safetensors=True)
    torch.manual_seed(0)
    lora = LoraConfig(r=32, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "dense"], bias="none",
                      lora_dropout=0.05, task_type="CAUSAL_LM", init_lora_weights=False)  # non-zero B: a real update
    get_peft_model(base, lora).save_pretrained(out)
    del base
    gc.collect()


def dialogues(path: str, tokenizer, count: int) -> list[str]:
    """`count` dialogues of at least PROMPT_TOKENS - 16 tokens (the longer ones first in file order, then shorter
    ones if there are too few), each cut there: prompts of ~PROMPT_TOKENS tokens."""
    cut = PROMPT_TOKENS - 16
    ids = [tokenizer(json.loads(line)["dialogue"])["input_ids"]
           for line in Path(path).read_text().splitlines() if line.strip()]
    chosen = [i for i in ids if len(i) >= cut] + [i for i in ids if len(i) < cut]
    return [tokenizer.decode(i[:cut]) for i in chosen[:count]]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: kernels, allocator, caches, compilation, graph capture
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def load_reference(model_dir: str, adapter: Path):
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16,
                             bnb_4bit_use_double_quant=False)
    base = AutoModelForCausalLM.from_pretrained(model_dir, device_map={"": 0}, quantization_config=bnb,
                                                use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, add_bos_token=True, use_fast=False, padding_side="left")
    tokenizer.pad_token = tokenizer.eos_token
    return PeftModel.from_pretrained(base, str(adapter), is_trainable=False).eval(), tokenizer


def reference(a, adapter: Path, static: bool) -> None:
    model, tokenizer = load_reference(a.model, adapter)
    texts = dialogues(a.data, tokenizer, max(a.batch_list + [a.parity]))
    extra = {"cache_implementation": "static"} if static else {}
    stack = "reference-static" if static else "reference"
    for batch in a.batch_list:
        inputs = tokenizer([PROMPT.format(dialogue=d) for d in texts[:batch]], return_tensors="pt",
                           padding=True).to("cuda")
        out = {}

        def run():
            with torch.no_grad():
                out["ids"] = model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                            pad_token_id=tokenizer.eos_token_id, do_sample=False, **extra)

        t0 = time.perf_counter()
        times = timed(run, a.repeats)
        first = time.perf_counter() - t0 - sum(times)
        new = (out["ids"].shape[1] - inputs["input_ids"].shape[1]) * batch
        emit(a, stack, batch, prompt_tokens=int(inputs["attention_mask"].sum()) / batch, new_tokens=new,
             seconds=statistics.median(times), first_call_s=round(first, 2))
    if not static and a.parity:
        rows = []
        for start in range(0, a.parity, 16):
            inputs = tokenizer([PROMPT.format(dialogue=d) for d in texts[start:start + 16]], return_tensors="pt",
                               padding=True).to("cuda")
            with torch.no_grad():
                ids = model.generate(**inputs, max_new_tokens=PARITY_TOKENS, min_new_tokens=PARITY_TOKENS,
                                     pad_token_id=tokenizer.eos_token_id, do_sample=False)
                try:
                    static = model.generate(**inputs, max_new_tokens=PARITY_TOKENS, min_new_tokens=PARITY_TOKENS,
                                            pad_token_id=tokenizer.eos_token_id, do_sample=False,
                                            cache_implementation="static", disable_compile=True)
                except Exception as exc:  # noqa: BLE001 - the comparison is a diagnostic, the parity file is not
                    print(f"static-cache reference failed: {exc}", file=sys.stderr)
                    static = ids
            width = inputs["input_ids"].shape[1]
            rows.append({"input_ids": inputs["input_ids"].tolist(), "attention_mask": inputs["attention_mask"].tolist(),
                         "tokens": ids[:, width:].tolist(), "static": static[:, width:].tolist()})
        (Path(a.out) / "parity.json").write_text(json.dumps(rows))
        # the reference against itself with a static cache: how often fp16 rounding alone flips a greedy token here
        same = sum(r == s for chunk in rows for r, s in zip(chunk["tokens"], chunk["static"]))
        emit(a, "reference-static-vs-dynamic", 16, parity_prompts=a.parity, parity_first32_equal=same,
             parity_share=same / a.parity)


def engine_config(model_dir: str, quantization: str) -> dict:
    schema = json.loads((ROOT / "schemas/finetune.schema.json").read_text())
    return {
        "model": model_dir, "trust_remote_code": False, "quantization": quantization, "double_quant": False,
        "compute_dtype": "float16" if torch.cuda.is_available() else "float32",
        "lora": {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "dense"]},
        "data": {"train": str(ROOT / "samples/dialogsum/train.jsonl"), "validation": None, "test": None,
                 "validation_split": 0.05},
        "template": str(ROOT / "samples/dialogsum/summarize.prompt.yaml"), "max_length": 2048,
        "loss_on": "response", "packing": False,
        "train": {k: v.get("default") for k, v in schema["properties"]["train"]["properties"].items()},
    }


# stack -> DecodeGraphs settings that differ from the engine's picks
ENGINE_STACKS = {
    "engine": {},
    "engine-uncompiled": {"compile": False},
    "engine-cublas": {},  # compiled, with cuBLAS's GEMVs at one row instead of decode.matvec
    "engine-wide-cublas": {},  # decode.matvec except for products wider out than in (Phi-2's fc1), left to cuBLAS
    "engine-unmerged": {"merge": False},
    "engine-4bit": {"dense": False},
    "engine-no-graphs": {},
}


def engine(a, adapter: Path) -> None:
    from qlora_engine import decode
    from qlora_engine.dense_base import dense_linear
    from qlora_engine.generate import Generator
    graphs = a.stack != "engine-no-graphs"
    if not graphs:
        decode._graphs_possible = lambda model: False
    decode.MATVEC = a.stack != "engine-cublas"
    if a.stack == "engine-wide-cublas":
        matvec = decode.matvec
        decode.matvec = lambda x, w, b: (dense_linear(x, w, b) if w.shape[0] > w.shape[1] else matvec(x, w, b))
    stack = a.stack
    generator = Generator()
    config = engine_config(a.model, a.quantization)
    t0 = time.perf_counter()
    generator.generate({"config": config, "adapter": str(adapter), "records": [{"dialogue": "Hi."}],
                        "maxNewTokens": 1})
    load = time.perf_counter() - t0
    generator._graphs.clear()
    for key, value in ENGINE_STACKS[a.stack].items():
        setattr(generator._graphs, key, value)
    texts = dialogues(a.data, generator._tokenizer, max(a.batch_list))
    for batch in a.batch_list:
        params = {"config": config, "adapter": str(adapter), "records": [{"dialogue": d} for d in texts[:batch]],
                  "maxNewTokens": NEW_TOKENS, "temperature": 0, "topP": 1.0, "seed": 0, "batchSize": batch}
        out = {}

        def run():
            out["r"] = generator.generate(params)

        t0 = time.perf_counter()
        times = timed(run, a.repeats)
        first = time.perf_counter() - t0 - sum(times)
        completions = out["r"]["completions"]
        emit(a, stack, batch, prompt_tokens=sum(c["promptTokens"] for c in completions) / batch,
             new_tokens=sum(c["newTokens"] for c in completions), seconds=statistics.median(times),
             first_call_s=round(first, 2), load_s=round(load, 2), graphs_captured=generator._graphs.captured,
             dense=generator._graphs.dense, merge=generator._graphs.merge, compiled=generator._graphs.compile,
             dynamo_graphs=torch._dynamo.utils.counters["stats"]["unique_graphs"])
    # time to first streamed text, batch 1, warm engine (median of 3)
    firsts = []
    for _ in range(3):
        seen = []
        t0 = time.perf_counter()
        generator.generate({"config": config, "adapter": str(adapter), "records": [{"dialogue": texts[0]}],
                            "maxNewTokens": 60, "streamId": "s"},
                           notify=lambda n: seen.append(time.perf_counter() - t0) if n["text"] else None)
        firsts.append(seen[0] if seen else float("nan"))
    emit(a, stack, 1, time_to_first_text_s=statistics.median(firsts))
    parity_file = Path(a.out) / "parity.json"
    if graphs and parity_file.is_file() and a.parity:
        chunks = json.loads(parity_file.read_text())
        same = same_static = total = 0
        for chunk in chunks:
            with torch.inference_mode():
                got = decode.decode(generator._model, torch.tensor(chunk["input_ids"]),
                                    torch.tensor(chunk["attention_mask"]), max_new=PARITY_TOKENS, eos=None,
                                    pad=generator._tokenizer.pad_token_id, graphs=generator._graphs)
            for mine, theirs, static in zip(got.tokens, chunk["tokens"], chunk.get("static", chunk["tokens"])):
                total += 1
                same += mine[:PARITY_TOKENS] == theirs[:PARITY_TOKENS]
                same_static += mine[:PARITY_TOKENS] == static[:PARITY_TOKENS]
        emit(a, stack, 16, parity_prompts=total, parity_first32_equal=same, parity_share=same / max(total, 1),
             parity_first32_equal_to_static_reference=same_static)
        # batch 1 runs other kernels (decode.matvec under compilation): the first 16 prompts again, one at a time
        chunk = chunks[0]
        alone = 0
        for ids, mask, theirs in zip(chunk["input_ids"], chunk["attention_mask"], chunk["tokens"]):
            prompt = torch.tensor([i for i, m in zip(ids, mask) if m])[None]
            with torch.inference_mode():
                got = decode.decode(generator._model, prompt, torch.ones_like(prompt), max_new=PARITY_TOKENS,
                                    eos=None, pad=generator._tokenizer.pad_token_id, graphs=generator._graphs)
            alone += got.tokens[0][:PARITY_TOKENS] == theirs[:PARITY_TOKENS]
        emit(a, stack, 1, parity_prompts=len(chunk["tokens"]), parity_first32_equal=alone,
             parity_share=alone / len(chunk["tokens"]))


def emit(a, stack: str, batch: int, **values) -> None:
    row = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "stack": stack, "batch": batch, **values}
    if "seconds" in values:
        row["tokens_per_s"] = round(values["new_tokens"] / values["seconds"], 1)
    print(json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stack", required=True, choices=["reference", "reference-static", *ENGINE_STACKS])
    p.add_argument("--model", required=True)
    p.add_argument("--data", default=str(ROOT / "samples/dialogsum/test.jsonl"))
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--parity", type=int, default=64, help="prompts compared token by token (0: none)")
    p.add_argument("--out", default=".")
    p.add_argument("--adapter", default="/tmp/bench-adapter")
    p.add_argument("--quantization", default="nf4", help="the engine's (none: a CPU smoke run)")
    a = p.parse_args()
    a.model = str(Path(a.model).resolve())
    a.batch_list = [int(b) for b in a.batches.split(",")]
    adapter = Path(a.adapter)
    if not adapter.exists():
        make_adapter(a.model, adapter)
    if a.stack.startswith("reference"):
        reference(a, adapter, static=a.stack == "reference-static")
    else:
        engine(a, adapter)


if __name__ == "__main__":
    main()
