"""Generation speed: the reference stack's `model.generate` (tutorial inference: NF4 base + PeftModel adapter,
is_trainable=False) against the engine's `generate` request handler, same model, prompts and decoding.

Random Phi-2-shape weights (bench/make_random_model.py) and a random LoRA adapter: speed depends on shapes only.
Prints one JSON line per (stack, batch size).

    python bench/generate_bench.py --model /tmp/phi2-random --data samples/dialogsum/test.jsonl
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

from qlora_engine.generate import Generator  # noqa: E402

PROMPT = "Instruct: Summarize the following conversation.\n{dialogue}\nOutput:\n"
NEW_TOKENS = 100


def make_adapter(model_dir: str, out: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, use_safetensors=True)
    torch.manual_seed(0)
    lora = LoraConfig(r=32, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "dense"], bias="none",
                      lora_dropout=0.05, task_type="CAUSAL_LM", init_lora_weights=False)  # non-zero B: a real update
    get_peft_model(base, lora).save_pretrained(out)
    del base
    gc.collect()


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: kernels, allocator, caches
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def reference(model_dir: str, adapter: Path, dialogues: list[str], batch: int, repeats: int) -> dict:
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16,
                             bnb_4bit_use_double_quant=False)
    base = AutoModelForCausalLM.from_pretrained(model_dir, device_map={"": 0}, quantization_config=bnb,
                                                use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, add_bos_token=True, use_fast=False, padding_side="left")
    tokenizer.pad_token = tokenizer.eos_token
    model = PeftModel.from_pretrained(base, str(adapter), is_trainable=False).eval()
    prompts = [PROMPT.format(dialogue=d) for d in dialogues[:batch]]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to("cuda")
    out = {}

    def run():
        with torch.no_grad():
            out["ids"] = model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                        pad_token_id=tokenizer.eos_token_id, do_sample=False)

    times = timed(run, repeats)
    new = (out["ids"].shape[1] - inputs["input_ids"].shape[1]) * batch
    prompt_tokens = int(inputs["attention_mask"].sum()) / batch
    del model, base
    gc.collect()
    torch.cuda.empty_cache()
    return {"stack": "reference", "batch": batch, "prompt_tokens": prompt_tokens, "new_tokens": new,
            "seconds": statistics.median(times), "tokens_per_s": new / statistics.median(times)}


def engine(model_dir: str, adapter: Path, dialogues: list[str], batch: int, repeats: int,
           generator: Generator) -> dict:
    schema = json.loads((ROOT / "schemas/finetune.schema.json").read_text())
    config = {
        "model": model_dir, "trust_remote_code": False, "quantization": "nf4", "double_quant": False,
        "compute_dtype": "float16",
        "lora": {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "dense"]},
        "data": {"train": str(ROOT / "samples/dialogsum/train.jsonl"), "validation": None, "test": None,
                 "validation_split": 0.05},
        "template": str(ROOT / "samples/dialogsum/summarize.prompt.yaml"), "max_length": 2048,
        "loss_on": "response", "packing": False,
        "train": {k: v.get("default") for k, v in schema["properties"]["train"]["properties"].items()},
    }
    params = {"config": config, "adapter": str(adapter), "records": [{"dialogue": d} for d in dialogues[:batch]],
              "maxNewTokens": NEW_TOKENS, "temperature": 0, "topP": 1.0, "seed": 0, "batchSize": batch}
    out = {}

    def run():
        out["r"] = generator.generate(params)

    times = timed(run, repeats)
    completions = out["r"]["completions"]
    new = sum(c["newTokens"] for c in completions)
    return {"stack": "engine", "batch": batch, "prompt_tokens": sum(c["promptTokens"] for c in completions) / batch,
            "new_tokens": new, "seconds": statistics.median(times), "tokens_per_s": new / statistics.median(times)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", default=str(ROOT / "samples/dialogsum/test.jsonl"))
    p.add_argument("--batches", default="1,16")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    model_dir = str(Path(a.model).resolve())
    adapter = Path("/tmp/bench-adapter")
    if not adapter.exists():
        make_adapter(model_dir, adapter)
    dialogues = [json.loads(line)["dialogue"] for line in Path(a.data).read_text().splitlines() if line.strip()]
    batches = [int(b) for b in a.batches.split(",")]
    device = torch.cuda.get_device_name(0)
    for b in batches:
        print(json.dumps({"device": device, **reference(model_dir, adapter, dialogues, b, a.repeats)}), flush=True)
    generator = Generator()
    for b in batches:
        print(json.dumps({"device": device, **engine(model_dir, adapter, dialogues, b, a.repeats, generator)}),
              flush=True)


if __name__ == "__main__":
    main()
