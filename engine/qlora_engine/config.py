"""The resolved fine-tune config (protocol/config.ts) as typed, checked dataclasses.

The server sends the config with defaults filled and paths absolute; the engine still checks every field it
uses (type, enum, range, absolute paths) so a bad value fails before anything is loaded, with the dotted field
name in the error. RULES mirrors schemas/finetune.schema.json (tests/test_config.py compares them); a missing
optional field gets the schema's default so a hand-written dict works too.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

from .errors import BadConfig


@dataclass(frozen=True)
class Rule:
    kind: str  # "str" | "bool" | "int" | "int?" | "number" | "enum" | "path" | "path?" | "strings" | "strings?";
    # "int|auto", "bool|auto"; "early_stopping?" (train.early_stopping: an object or null)
    default: Any = None
    required: bool = False
    enum: Tuple[Optional[str], ...] = ()  # None: the JSON null
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive_minimum: Optional[float] = None


# How records become text (docs/chat-datasets.md): a prompt template, or a chat format rendered by a chat template.
CHAT_FORMATS = ("messages", "sharegpt", "alpaca")
DATA_FORMATS = ("auto", "template") + CHAT_FORMATS

RULES: Dict[str, Rule] = {
    "model": Rule("str", required=True),
    "trust_remote_code": Rule("bool", False),
    "quantization": Rule("enum", "nf4", enum=("nf4", "fp4", "int8", "none")),
    "double_quant": Rule("bool", False),
    "compute_dtype": Rule("enum", "auto", enum=("auto", "bfloat16", "float16", "float32")),
    "lora.r": Rule("int", 32, minimum=1, maximum=1024),
    "lora.alpha": Rule("number", 32, exclusive_minimum=0),
    "lora.dropout": Rule("number", 0.05, minimum=0, maximum=0.9),
    "lora.target_modules": Rule("strings", ["q_proj", "k_proj", "v_proj", "dense"]),
    "data.train": Rule("path", required=True),
    "data.validation": Rule("path?", None),
    "data.test": Rule("path?", None),
    "data.validation_split": Rule("number", 0.05, minimum=0, maximum=0.5),
    "data.format": Rule("enum", "auto", enum=DATA_FORMATS),
    "template": Rule("path?", None),
    "chat_template": Rule("path?", None),
    "max_length": Rule("int", 1024, minimum=16, maximum=131072),
    "loss_on": Rule("enum", "response", enum=("response", "all")),
    "packing": Rule("bool", False),
    "train.max_steps": Rule("int", 1000, minimum=1),
    "train.epochs": Rule("int?", None, minimum=1),
    "train.early_stopping": Rule("early_stopping?", None),
    "train.devices": Rule("int|auto", 1, minimum=1, maximum=64),
    "train.strategy": Rule("enum", "auto", enum=("auto", "ddp", "fsdp")),
    "train.micro_batch_size": Rule("int|auto", 1, minimum=1, maximum=1024),
    "train.gradient_accumulation": Rule("int", 4, minimum=1, maximum=4096),
    "train.learning_rate": Rule("number", 0.0002, exclusive_minimum=0, maximum=1),
    "train.lr_scheduler": Rule("enum", "linear", enum=("linear", "cosine", "constant")),
    "train.warmup_steps": Rule("int", 1, minimum=0),
    "train.weight_decay": Rule("number", 0, minimum=0, maximum=1),
    "train.max_grad_norm": Rule("number", 1.0, minimum=0),
    "train.optimizer": Rule("enum", "adamw_torch_fused", enum=("adamw_torch", "adamw_torch_fused", "paged_adamw_8bit")),
    "train.gradient_checkpointing": Rule("bool|auto", "auto"),
    "train.token_batching": Rule("bool", True),
    "train.tokens_per_pass": Rule("int|auto", "auto", minimum=16, maximum=1048576),
    "train.loss_chunk": Rule("int", 2048, minimum=0, maximum=1048576),
    "train.fp32_upcast": Rule("bool|auto", "auto"),
    "train.compile": Rule("bool|auto", "auto"),
    "train.cuda_graphs": Rule("bool|auto", "auto"),
    "train.dense_base": Rule("bool|auto", "auto"),
    "train.tf32": Rule("bool", True),
    "train.max_nonfinite_steps": Rule("int", 3, minimum=1, maximum=1000),
    "train.eval_every": Rule("int", 25, minimum=0),
    "train.eval_batches": Rule("int", 0, minimum=0),
    "train.save_every": Rule("int", 25, minimum=0),
    "train.log_every": Rule("int", 1, minimum=1),
    "train.keep_checkpoints": Rule("int", 3, minimum=1),
    "train.seed": Rule("int", 42, minimum=0),
    "train.rouge_every": Rule("int", 0, minimum=0),
    "train.rouge_samples": Rule("int", 16, minimum=1),
    "train.best_metric": Rule("enum", None, enum=(None, "eval_loss", "rouge1", "rouge2", "rougeL", "rougeLsum")),
    "eval.references": Rule("strings?", None),
    "eval.max_new_tokens": Rule("int", 100, minimum=1, maximum=4096),
    "eval.batch_size": Rule("int", 8, minimum=1, maximum=1024),
    "log.tensorboard": Rule("bool", False),
}
SECTIONS = ("lora", "data", "train", "eval", "log")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass(frozen=True)
class LoraConfig:
    r: int
    alpha: float
    dropout: float
    target_modules: Tuple[str, ...]


@dataclass(frozen=True)
class DataConfig:
    train: str
    validation: Optional[str]
    test: Optional[str]
    validation_split: float
    format: str  # DATA_FORMATS; "auto" until chat.resolve_format reads the first training record


@dataclass(frozen=True)
class EarlyStopping:
    metric: str  # eval_loss (lower is better) or a ROUGE type (higher is better)
    patience: int
    min_delta: float


EARLY_STOPPING_RULES = {
    "metric": Rule("enum", "eval_loss", enum=("eval_loss", "rouge1", "rouge2", "rougeL", "rougeLsum")),
    "patience": Rule("int", 3, minimum=1, maximum=1000),
    "min_delta": Rule("number", 0, minimum=0),
}


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int
    epochs: Optional[int]  # set: the run's length in passes over the training rows (max_steps is ignored)
    early_stopping: Optional["EarlyStopping"]
    devices: Union[int, str]  # training processes (launch.py); "auto": every visible GPU
    strategy: str  # "ddp" (the whole model in each) or "fsdp" (the base sharded: fsdp.py); "auto" until plan.pick
    micro_batch_size: Union[int, str]  # an int, or "auto" until Recipe.setup resolves it (plan.pick)
    gradient_accumulation: int
    learning_rate: float
    lr_scheduler: str
    warmup_steps: int
    weight_decay: float
    max_grad_norm: float
    optimizer: str
    gradient_checkpointing: Union[bool, str]  # a bool, or "auto" until resolved
    token_batching: bool
    tokens_per_pass: Union[int, str]
    loss_chunk: int
    fp32_upcast: Union[bool, str]
    compile: Union[bool, str]
    cuda_graphs: Union[bool, str]
    dense_base: Union[bool, str]
    tf32: bool
    max_nonfinite_steps: int
    eval_every: int
    eval_batches: int
    save_every: int
    log_every: int
    keep_checkpoints: int
    seed: int
    rouge_every: int
    rouge_samples: int
    best_metric: Optional[str]


@dataclass(frozen=True)
class EvalConfig:
    references: Optional[Tuple[str, ...]]
    max_new_tokens: int
    batch_size: int


@dataclass(frozen=True)
class LogConfig:
    tensorboard: bool


@dataclass(frozen=True)
class Config:
    model: str
    trust_remote_code: bool
    quantization: str
    double_quant: bool
    compute_dtype: str
    lora: LoraConfig
    data: DataConfig
    template: Optional[str]  # the prompt template; None for chat formats
    chat_template: Optional[str]  # a chat template file overriding the model's own
    max_length: int
    loss_on: str
    packing: bool
    train: TrainConfig
    eval: EvalConfig
    log: LogConfig

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"


def _check(path: str, rule: Rule, value: Any) -> Any:
    def bad(expected: str) -> BadConfig:
        return BadConfig(f"{path} must be {expected}, got {value!r}.", field=path)

    if rule.kind.endswith("|auto"):
        if value == "auto":
            return value
        rule = Rule(rule.kind[:-5], rule.default, minimum=rule.minimum, maximum=rule.maximum)
        if rule.kind == "bool" and not isinstance(value, bool):
            raise bad('true, false or "auto"')
        if rule.kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
            raise bad('an integer or "auto"')
    if rule.kind == "int?":
        if value is None:
            return None
        rule = Rule("int", minimum=rule.minimum, maximum=rule.maximum)
    if rule.kind == "early_stopping?":
        return _early_stopping(path, value)
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif rule.kind in ("int", "number"):
        ok = isinstance(value, int) if rule.kind == "int" else isinstance(value, (int, float))
        if not ok or isinstance(value, bool):
            raise bad("an integer" if rule.kind == "int" else "a number")
        if rule.minimum is not None and value < rule.minimum:
            raise bad(f">= {rule.minimum:g}")
        if rule.maximum is not None and value > rule.maximum:
            raise bad(f"<= {rule.maximum:g}")
        if rule.exclusive_minimum is not None and value <= rule.exclusive_minimum:
            raise bad(f"> {rule.exclusive_minimum:g}")
    elif rule.kind == "enum":
        if value not in rule.enum:
            raise bad("one of " + ", ".join("null" if v is None else v for v in rule.enum))
    elif rule.kind in ("strings", "strings?"):
        if value is None and rule.kind == "strings?":
            return None
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
            raise bad("a non-empty list of names")
        if len(set(value)) != len(value):
            raise bad("a list without duplicates")
        value = tuple(value)
    elif rule.kind in ("str", "path", "path?"):
        if value is None and rule.kind == "path?":
            return None
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        if rule.kind != "str" and not os.path.isabs(value):
            # The server resolves paths against the config file; a relative path here means it did not.
            raise bad("an absolute path (the server resolves paths relative to the config file)")
    return value


def _early_stopping(path: str, value: Any) -> Optional[EarlyStopping]:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadConfig(f"{path} must be an object ({{metric, patience, min_delta}}) or null, got {value!r}.",
                        field=path)
    for key in value:
        if key not in EARLY_STOPPING_RULES:
            raise BadConfig(f"unknown field {path}.{key}; known: {', '.join(EARLY_STOPPING_RULES)}.",
                            field=f"{path}.{key}")
    checked = {key: _check(f"{path}.{key}", rule, value.get(key, rule.default))
               for key, rule in EARLY_STOPPING_RULES.items()}
    return EarlyStopping(**checked)


def _lookup(raw: Dict[str, Any], path: str) -> Tuple[bool, Any]:
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def parse_config(raw: Any) -> Config:
    """Check a resolved config dict and return it typed; BadConfig names the first offending field."""
    if not isinstance(raw, dict):
        raise BadConfig("config must be an object (the resolved finetune.yaml).", field="config")
    known_top = {p.split(".")[0] for p in RULES}
    for key in raw:
        if key not in known_top:
            raise BadConfig(f"unknown config field {key!r}; known fields: {', '.join(sorted(known_top))}.",
                            field=key)
    for section in SECTIONS:
        value = raw.get(section, {})
        if not isinstance(value, dict):
            raise BadConfig(f"{section} must be an object.", field=section)
        known = {p.split(".", 1)[1] for p in RULES if p.startswith(section + ".")}
        for key in value:
            if key not in known:
                raise BadConfig(f"unknown field {section}.{key}; known: {', '.join(sorted(known))}.",
                                field=f"{section}.{key}")
    values: Dict[str, Any] = {}
    for path, rule in RULES.items():
        present, value = _lookup(raw, path)
        if not present:
            if rule.required:
                raise BadConfig(f"{path} is required.", field=path)
            value = list(rule.default) if isinstance(rule.default, list) else rule.default
        values[path] = _check(path, rule, value)

    def section(name: str) -> Dict[str, Any]:
        return {p.split(".", 1)[1]: v for p, v in values.items() if p.startswith(name + ".")}

    top = {p: v for p, v in values.items() if "." not in p}
    fmt = values["data.format"]
    if fmt in CHAT_FORMATS and top["template"] is not None:
        raise BadConfig(f"template is a prompt template, which data.format {fmt} does not use: chat records are "
                        "rendered by the chat template (the model's own, or chat_template:). Remove one of the two.",
                        field="template")
    if fmt == "template" and top["template"] is None:
        raise BadConfig("data.format template needs template: a prompt template file (.prompt.yaml).",
                        field="template")
    if top["chat_template"] is not None and (fmt == "template" or (fmt == "auto" and top["template"] is not None)):
        raise BadConfig("chat_template renders chat datasets; this config uses the prompt template instead. Remove "
                        "chat_template, or template to train on chat records.", field="chat_template")
    return Config(lora=LoraConfig(**section("lora")), data=DataConfig(**section("data")),
                  train=TrainConfig(**section("train")), eval=EvalConfig(**section("eval")),
                  log=LogConfig(**section("log")), **top)


def to_dict(config: Config) -> Dict[str, Any]:
    """The config as the resolved dict (what config.yaml in the run folder holds)."""
    out: Dict[str, Any] = {}
    for path in RULES:
        node: Any = config
        for part in path.split("."):
            node = getattr(node, part)
        if isinstance(node, tuple):  # lists are tuples in the frozen dataclasses
            node = list(node)
        elif isinstance(node, EarlyStopping):
            node = dataclasses.asdict(node)
        head, _, tail = path.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = node
        else:
            out[head] = node
    return out
