"""Shared fixtures: the tiny Phi model, small DialogSum-shaped data in tmp_path, and resolved configs built by
filling schemas/finetune.schema.json's defaults (what the server sends the engine)."""
from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ENGINE = Path(__file__).resolve().parents[1]
REPO = ENGINE.parent
sys.path.insert(0, str(ENGINE))

TINY = REPO / "samples" / "models" / "tiny-phi"
PHI2 = REPO / "samples" / "models" / "phi-2"
SCHEMA = REPO / "schemas" / "finetune.schema.json"
SAMPLES = REPO / "samples" / "dialogsum"
TEMPLATE_TEXT = (SAMPLES / "summarize.prompt.yaml").read_text(encoding="utf-8")


def schema_defaults(node: Dict[str, Any]) -> Any:
    """The default value of a schema node, recursing into objects so nested defaults are filled."""
    if node.get("type") == "object" and "properties" in node:
        out = copy.deepcopy(node.get("default", {}))
        for name, child in node["properties"].items():
            value = schema_defaults(child)
            if value is not _MISSING:
                out.setdefault(name, value)
        return out
    return copy.deepcopy(node["default"]) if "default" in node else _MISSING


_MISSING = object()


def deep_merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolved_config(**overrides: Any) -> Dict[str, Any]:
    """A resolved config: schema defaults, then the given top-level overrides (nested dicts merge)."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    config = schema_defaults(schema)
    config.setdefault("data", {})
    return deep_merge(config, overrides)


def short_records(n: int, *, offset: int = 0, dialogue_chars: int = 240) -> List[Dict[str, Any]]:
    """DialogSum records with dialogues cut short, so sequences stay ~100 tokens (fast on a CPU)."""
    rows = [json.loads(line) for line in (SAMPLES / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    out = []
    for row in rows[offset:offset + n]:
        out.append({"fname": row["fname"], "dialogue": row["dialogue"][:dialogue_chars], "summary": row["summary"],
                    "topic": row["topic"]})
    return out


def write_jsonl(path: Path, records: List[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


class Workspace:
    """A folder with train.jsonl, a template and helpers to build configs pointing at them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.train = write_jsonl(root / "train.jsonl", short_records(24))
        self.template = root / "summarize.prompt.yaml"
        self.template.write_text(TEMPLATE_TEXT, encoding="utf-8")
        self.runs = root / "runs"

    def config(self, **overrides: Any) -> Dict[str, Any]:
        base = {
            "model": str(TINY),
            "quantization": "none",
            "data": {"train": str(self.train), "validation_split": 0.1},
            "template": str(self.template),
            "max_length": 192,
            "lora": {"r": 8, "alpha": 16, "dropout": 0.05},
            "train": {"max_steps": 4, "micro_batch_size": 2, "gradient_accumulation": 1, "learning_rate": 2e-3,
                      "optimizer": "adamw_torch", "gradient_checkpointing": False, "eval_every": 0,
                      "save_every": 0, "warmup_steps": 1},
        }
        return resolved_config(**deep_merge(base, overrides))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(TINY))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Dict[str, Any]:
    """One 50-step training run shared by the loss, adapter and generation tests (training is the slow part)."""
    from qlora_engine.recipe import Recipe

    ws = Workspace(tmp_path_factory.mktemp("trained"))
    write_jsonl(ws.train, short_records(6, dialogue_chars=100))
    # lm_head is a target because the tiny model's frozen final LayerNorm (weight 1) and random lm_head (std 0.02)
    # cap its logits at about +-1.3: adapters on the blocks alone cannot take the loss far below ln(51200).
    config = ws.config(
        lora={"r": 16, "alpha": 32, "dropout": 0.0,
              "target_modules": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2", "lm_head"]},
        data={"validation_split": 0.0},
        max_length=128,
        train={"max_steps": 50, "micro_batch_size": 2, "learning_rate": 1e-2, "lr_scheduler": "constant",
               "warmup_steps": 2, "save_every": 25, "keep_checkpoints": 1, "seed": 7})
    run_dir = ws.runs / "trained"
    end = Recipe(config, run_dir).run()
    assert end["status"] == "completed", end
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"ws": ws, "config": config, "run_dir": run_dir, "end": end, "metrics": metrics}
