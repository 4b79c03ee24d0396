"""config.py's rules mirror the JSON Schema, and a bad value names its dotted field."""
from __future__ import annotations

import json

import pytest

from conftest import SCHEMA, resolved_config

from qlora_engine.config import RULES, parse_config, to_dict
from qlora_engine.errors import BadConfig


def schema_leaves():
    schema = json.loads(SCHEMA.read_text())
    for name, node in schema["properties"].items():
        if node.get("type") == "object":
            for child, leaf in node["properties"].items():
                yield f"{name}.{child}", leaf
        else:
            yield name, node


def test_rules_cover_exactly_the_schema():
    assert set(RULES) == {path for path, _ in schema_leaves()}


# The JSON type (and "auto" pattern) of each Rule kind; enums carry their values instead of a type.
KIND_TYPES = {
    "bool": ("boolean", None), "int": ("integer", None), "number": ("number", None), "str": ("string", None),
    "path": ("string", None), "path?": (["string", "null"], None), "strings": ("array", None),
    "strings?": (["array", "null"], None), "int|auto": (["integer", "string"], "^auto$"),
    "bool|auto": (["boolean", "string"], "^auto$"), "enum": (None, None), "int?": (["integer", "null"], None),
    "early_stopping?": (["object", "null"], None),
}


def required_paths():
    schema = json.loads(SCHEMA.read_text())
    top = set(schema.get("required", []))
    nested = {f"{name}.{child}" for name, node in schema["properties"].items()
              for child in node.get("required", [])}
    return {p for p in top if schema["properties"][p].get("type") != "object"} | nested


@pytest.mark.parametrize("path,leaf", list(schema_leaves()))
def test_rule_matches_schema(path, leaf):
    """Field by field: type, required, default, enum and range are the schema's (one source, two validators)."""
    rule = RULES[path]
    assert (leaf.get("type"), leaf.get("pattern")) == KIND_TYPES[rule.kind], path
    assert rule.required == (path in required_paths()), path
    assert rule.default == leaf.get("default"), path
    assert tuple(leaf.get("enum", ())) == rule.enum, path
    assert rule.minimum == leaf.get("minimum"), path
    assert rule.maximum == leaf.get("maximum"), path
    assert rule.exclusive_minimum == leaf.get("exclusiveMinimum"), path


def test_early_stopping_fields_match_schema():
    from qlora_engine.config import EARLY_STOPPING_RULES
    node = json.loads(SCHEMA.read_text())["properties"]["train"]["properties"]["early_stopping"]
    assert set(EARLY_STOPPING_RULES) == set(node["properties"])
    for key, leaf in node["properties"].items():
        rule = EARLY_STOPPING_RULES[key]
        assert (leaf.get("type"), leaf.get("pattern")) == KIND_TYPES[rule.kind], key
        assert (rule.default, rule.enum, rule.minimum, rule.maximum) == (
            leaf.get("default"), tuple(leaf.get("enum", ())), leaf.get("minimum"), leaf.get("maximum")), key


def test_early_stopping_and_epochs_parse_with_defaults_and_errors():
    config = parse_config(base(train={"epochs": 2, "early_stopping": {"metric": "rouge1"}}))
    assert config.train.epochs == 2
    assert (config.train.early_stopping.metric, config.train.early_stopping.patience) == ("rouge1", 3)
    assert to_dict(config)["train"]["early_stopping"] == {"metric": "rouge1", "patience": 3, "min_delta": 0}
    for bad, field in (({"early_stopping": {"patience": 0}}, "train.early_stopping.patience"),
                       ({"early_stopping": {"metric": "bleu"}}, "train.early_stopping.metric"),
                       ({"early_stopping": {"wait": 2}}, "train.early_stopping.wait"),
                       ({"early_stopping": 3}, "train.early_stopping"), ({"epochs": 0}, "train.epochs")):
        with pytest.raises(BadConfig) as info:
            parse_config(base(train=bad))
        assert info.value.field == field, bad


def base(**overrides):
    return resolved_config(**{"model": "/m", "data": {"train": "/d/train.jsonl"}, "template": "/d/t.prompt.yaml",
                              **overrides})


def test_resolved_config_round_trips():
    raw = base()
    config = parse_config(raw)
    assert to_dict(config) == raw
    assert config.lora.target_modules == ("q_proj", "k_proj", "v_proj", "dense")
    assert config.train.best_metric is None and config.eval.references is None
    named = parse_config(base(eval={"references": ["summary1", "summary2"]}, train={"best_metric": "rougeLsum"}))
    assert named.eval.references == ("summary1", "summary2") and named.train.best_metric == "rougeLsum"
    assert to_dict(named)["eval"]["references"] == ["summary1", "summary2"]


@pytest.mark.parametrize("overrides,field", [
    ({"quantization": "nf8"}, "quantization"),
    ({"lora": {"r": 0}}, "lora.r"),
    ({"lora": {"target_modules": []}}, "lora.target_modules"),
    ({"train": {"learning_rate": 0}}, "train.learning_rate"),
    ({"train": {"max_steps": 1.5}}, "train.max_steps"),
    ({"train": {"gradient_checkpointing": "yes"}}, "train.gradient_checkpointing"),
    ({"data": {"train": "relative/train.jsonl"}}, "data.train"),
    ({"train": {"max_stepz": 3}}, "train.max_stepz"),
    ({"modle": "x"}, "modle"),
    ({"train": {"best_metric": "bleu"}}, "train.best_metric"),
    ({"train": {"rouge_samples": 0}}, "train.rouge_samples"),
    ({"eval": {"references": []}}, "eval.references"),
    ({"eval": {"references": "summary1"}}, "eval.references"),
    ({"eval": {"max_new_tokens": 0}}, "eval.max_new_tokens"),
    ({"eval": {"refs": ["a"]}}, "eval.refs"),
])
def test_bad_values_name_the_field(overrides, field):
    with pytest.raises(BadConfig) as info:
        parse_config(base(**overrides))
    assert info.value.field == field
    assert field in info.value.message
