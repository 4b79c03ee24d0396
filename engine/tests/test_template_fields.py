"""Which fields a record must hold, by how the template uses them: the rule the linter applies too
(test/lsp/field-rules-parity.test.ts compares the two over the lint fixtures). And `all-linear` targets."""
from __future__ import annotations

import json

import pytest

from conftest import TINY, write_jsonl

from qlora_engine.config import parse_config
from qlora_engine.data import Record, check_fields, field_problems, read_jsonl
from qlora_engine.errors import BadConfig, BadDataset
from qlora_engine.model import ALL_LINEAR, check_model
from qlora_engine.plan import estimate
from qlora_engine.recipe import Recipe
from qlora_engine.template import load_template


def template(tmp_path, prompt, response="{{ output }}"):
    path = tmp_path / "t.prompt.yaml"
    path.write_text(json.dumps({"prompt": prompt, "response": response}), encoding="utf-8")
    return load_template(path)


@pytest.mark.parametrize("prompt,rule", [
    ("{{ x }}", "text"),
    ("{% if x %}{{ x }}{% endif %}", "tested"),
    ("{{ 'a' if x else 'b' }}", "tested"),
    ("{% if x is defined %}{{ x }}{% endif %}", "optional"),
    ("{{ x | default('none') }}", "optional"),
    ("{{ x | d('') }}", "optional"),
    ("{% for turn in x %}{{ turn }}{% endfor %}", "structured"),
    ("{{ x.name }}", "structured"),
    ("{{ x[0] }}", "structured"),
])
def test_rules_by_use(tmp_path, prompt, rule):
    assert template(tmp_path, prompt).rules()["x"] == rule


def test_the_prompt_decides_for_a_variable_in_both_parts(tmp_path):
    t = template(tmp_path, "{% if x is defined %}{{ x }}{% endif %}", response="{{ x }}")
    assert t.rules()["x"] == "optional"
    assert template(tmp_path, "{{ y }}", response="{% if x %}{{ x }}{% endif %}").rules()["x"] == "tested"


@pytest.mark.parametrize("rule,value,problem", [
    ("text", "ok", None), ("text", "", "is empty"), ("text", None, "is null"), ("text", 3, "is a number, not a string"),
    ("text", ["a"], "is a list, not a string"), ("tested", None, None), ("tested", "", None),
    ("structured", [], None), ("structured", None, "is null"), ("optional", None, None),
])
def test_problems_by_rule(tmp_path, rule, value, problem):
    prompts = {"text": "{{ x }}", "tested": "{% if x %}!{% endif %}", "structured": "{% for i in x %}{% endfor %}",
               "optional": "{{ x | default('') }}"}
    t = template(tmp_path, prompts[rule])
    found = field_problems([Record(1, {"x": value, "output": "o"})], t)
    assert found == ([] if problem is None else [(1, "x", problem)])
    missing = field_problems([Record(1, {"output": "o"})], t)
    assert missing == ([] if rule == "optional" else [(1, "x", "is missing")])


def test_optional_fields_train(ws):
    """The issue's case: a template with optional variables lints clean, and the engine trains on the records."""
    ws.template.write_text(json.dumps({
        "prompt": "{{ instruction }}\n{% if input %}Input: {{ input }}\n{% endif %}"
                  "{% if context is defined %}Context: {{ context }}\n{% endif %}Response: ",
        "response": "{{ output }}"}), encoding="utf-8")
    write_jsonl(ws.train, [{"instruction": f"Add {i} and {i}.", "input": "" if i % 2 else None, "output": str(2 * i)}
                           | ({"context": "numbers"} if i % 3 == 0 else {}) for i in range(1, 9)])
    end = Recipe(ws.config(data={"validation_split": 0.0}, train={"max_steps": 2}), ws.runs / "opt").run()
    assert end["status"] == "completed", end


def test_a_printed_field_must_be_text(ws, tmp_path):
    write_jsonl(ws.train, [{"dialogue": "A: hi", "summary": "greeting"}, {"dialogue": "A: bye", "summary": 7}])
    with pytest.raises(BadDataset) as info:
        check_fields(read_jsonl(ws.train), load_template(ws.template), ws.train)
    assert info.value.line == 2 and info.value.field == "summary" and "not a string" in info.value.message


def test_all_linear_targets_every_linear_layer_but_the_head(ws):
    config = ws.config(lora={"target_modules": [ALL_LINEAR], "dropout": 0.0}, train={"max_steps": 1})
    check_model(parse_config(config))
    plan = estimate(config)
    named = estimate(ws.config(lora={"target_modules": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]}))
    assert plan["loraParameters"] == named["loraParameters"] > 0
    end = Recipe(config, ws.runs / "all").run()
    assert end["status"] == "completed", end
    adapter = json.loads((ws.runs / "all" / "adapter" / "adapter_config.json").read_text())
    assert {name.rsplit(".", 1)[-1] for name in adapter["target_modules"]} == {
        "q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"}


def test_all_linear_stands_alone(ws):
    with pytest.raises(BadConfig) as info:
        check_model(parse_config(ws.config(lora={"target_modules": [ALL_LINEAR, "q_proj"]})))
    assert info.value.field == "lora.target_modules" and "alone" in info.value.message
