"""The reference stack: the classic Phi-2 QLoRA tutorial's pipeline (../shared/REFERENCE.md), step for step.

transformers Trainer + peft + bitsandbytes NF4, DataCollatorForLanguageModeling (loss on every token), the
tutorial's TrainingArguments. Prints one JSON line of measurements; run in its own process so peak memory is its own.

    python bench/reference_stack.py --model /tmp/phi2-random --train samples/dialogsum/train.jsonl \
        --validation samples/dialogsum/validation.jsonl --max-steps 30
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, DataCollatorForLanguageModeling,
                          Trainer, TrainerCallback, TrainingArguments)

INTRO_BLURB = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


def create_prompt_formats(sample: dict) -> str:
    parts = [f"\n{INTRO_BLURB}", "### Instruct: Summarize the below conversation.", sample["dialogue"],
             f"### Output:\n{sample['summary']}", "### End"]
    return "\n\n".join(p for p in parts if p)


def load_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def get_max_length(model) -> int:
    for key in ("n_positions", "max_position_embeddings", "seq_length"):
        value = getattr(model.config, key, None)
        if value:
            return value
    return 1024


class StepTimer(TrainerCallback):
    """Wall time per optimizer step, so eval/save steps can be told apart from training steps."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last = None
        self.losses: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        torch.cuda.synchronize()
        self.last = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.last)

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--validation", required=True)
    p.add_argument("--max-steps", type=int, default=30)
    p.add_argument("--logging-steps", type=int, default=25)
    p.add_argument("--output", default="/tmp/reference-out")
    p.add_argument("--sampling", choices=["group_by_length", "random"], default="group_by_length",
                   help="the tutorial groups by length (longest records first); random matches the engine's order")
    a = p.parse_args()
    seed = 42
    random.seed(seed)
    torch.manual_seed(seed)

    compute_dtype = getattr(torch, "float16")
    bnb_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype,
                                    bnb_4bit_use_double_quant=False)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(a.model, device_map={"": 0}, quantization_config=bnb_config,
                                                 trust_remote_code=True, use_safetensors=True)
    load_s = time.perf_counter() - t0
    tokenizer = AutoTokenizer.from_pretrained(a.model, trust_remote_code=True, padding_side="left",
                                              add_eos_token=True, add_bos_token=True, use_fast=False)
    tokenizer.pad_token = tokenizer.eos_token

    max_length = get_max_length(model)

    def preprocess(rows: list[dict]) -> list[dict]:
        out = []
        for r in rows:
            ids = tokenizer(create_prompt_formats(r), max_length=max_length, truncation=True)
            if len(ids["input_ids"]) < max_length:
                out.append({"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]})
        random.Random(seed).shuffle(out)
        return out

    train = preprocess(load_jsonl(a.train))
    evaluation = preprocess(load_jsonl(a.validation))
    tokens_per_record = sum(len(r["input_ids"]) for r in train) / len(train)

    model = prepare_model_for_kbit_training(model)
    config = LoraConfig(r=32, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "dense"], bias="none",
                        lora_dropout=0.05, task_type="CAUSAL_LM")
    model.gradient_checkpointing_enable()
    model = get_peft_model(model, config)

    kwargs = dict(output_dir=a.output, warmup_steps=1, per_device_train_batch_size=1, gradient_accumulation_steps=4,
                  max_steps=a.max_steps, learning_rate=2e-4, optim="paged_adamw_8bit", logging_steps=a.logging_steps,
                  save_strategy="steps", save_steps=25, eval_strategy="steps", eval_steps=25,
                  do_eval=True, gradient_checkpointing=True, report_to="none", overwrite_output_dir=True)
    # transformers 5 spells the tutorial's group_by_length=True as train_sampling_strategy, and dropped a few
    # arguments the tutorial passes (logging_dir, overwrite_output_dir): keep only what this version accepts.
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in fields:
        kwargs["train_sampling_strategy"] = a.sampling
    else:
        kwargs["group_by_length"] = a.sampling == "group_by_length"
    dropped = sorted(k for k in kwargs if k not in fields)
    if dropped:
        print(f"TrainingArguments of this transformers lacks {dropped}; left out", file=sys.stderr)
    args = TrainingArguments(**{k: v for k, v in kwargs.items() if k in fields})
    timer = StepTimer()
    trainer = Trainer(model=model, train_dataset=train, eval_dataset=evaluation, args=args,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=[timer])
    model.config.use_cache = False
    t0 = time.perf_counter()
    trainer.train()
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    steady = sorted(timer.times[3:])  # skip warm-up steps
    median = steady[len(steady) // 2]
    print(json.dumps({
        "stack": "reference", "variant": a.sampling, "transformers": transformers.__version__, "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0), "max_length": max_length, "records": len(train),
        "tokens_per_record": tokens_per_record, "steps": a.max_steps, "load_s": load_s, "wall_s": wall,
        "step_s_median": median,
        # 4 records a step of the data's mean length over the median step time: an unbiased estimate with random
        # sampling only (group_by_length serves the longest records first)
        "tokens_per_s": 4 * tokens_per_record / median, "train_wall_s": wall,
        "peak_bytes": torch.cuda.max_memory_allocated(), "losses": timer.losses,
    }))


if __name__ == "__main__":
    main()
