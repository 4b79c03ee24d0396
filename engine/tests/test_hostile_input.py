"""Hostile and broken input, generated (hypothesis, derandomized: the same examples on every run): malformed JSONL
bytes, configs and templates reach the engine's data path and end in a named error with file, line or field,
never another exception. Seeds: hypothesis' derandomize=True (examples are a function of the test alone)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as st

from qlora_engine.config import RULES, parse_config
from qlora_engine.data import Record, check_fields, read_jsonl
from qlora_engine.errors import BadConfig, BadDataset, BadTemplate
from qlora_engine.template import load_template

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def write(data: bytes) -> Path:
    fd, name = tempfile.mkstemp(suffix=".jsonl")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def read_or_named_error(data: bytes) -> None:
    path = write(data)
    try:
        records = read_jsonl(path)
        assert records and all(isinstance(r.fields, dict) and r.line >= 1 for r in records)
    except BadDataset as exc:
        assert exc.file == str(path) and (exc.line is not None or exc.field is not None), exc.to_data()
        assert str(path.name) in exc.message
    finally:
        path.unlink()


@SETTINGS
@given(st.binary(max_size=3000))
def test_any_bytes(data):
    read_or_named_error(data)


@SETTINGS
@given(st.lists(json_values.map(json.dumps) | st.text(max_size=40), max_size=12))
def test_lines_of_json_and_junk(lines):
    read_or_named_error("\n".join(lines).encode("utf-8", "surrogatepass"))


def test_deep_nesting_huge_numbers_and_a_10_mb_line():
    read_or_named_error(b"[" * 200_000 + b"\n")  # json recursion limit
    read_or_named_error(b'{"a": ' + b"9" * 10_000 + b"}\n")  # beyond Python's int digit limit
    read_or_named_error(b'{"a": 1e999}\n')
    read_or_named_error(b'{"dialogue": "' + b"x" * (10 << 20) + b'", "summary": "s"}\n')


config_keys = st.sampled_from(sorted({p.split(".")[0] for p in RULES} | {"extra", "train", "lora"}))
leaf_keys = st.sampled_from(sorted({p.split(".", 1)[-1] for p in RULES} | {"bogus"}))


@SETTINGS
@given(st.dictionaries(config_keys, json_values | st.dictionaries(leaf_keys, json_values, max_size=6), max_size=10))
def test_configs(raw):
    try:
        parse_config(raw)
    except BadConfig as exc:
        assert isinstance(exc.field, str) and exc.field and exc.field in exc.message or exc.field == "config"


template_text = st.builds(lambda p, r, junk: junk or json.dumps({"prompt": p, "response": r}),
                          st.text(alphabet=st.sampled_from(list("{}%#()|x.y ab=\n'\"")), max_size=40),
                          st.text(alphabet=st.sampled_from(list("{}%x .|\n")), max_size=20),
                          st.one_of(st.just(""), st.text(max_size=60)))


@SETTINGS
@given(template_text, st.lists(st.dictionaries(st.sampled_from(["x", "y", "a", "b"]), json_values, max_size=4),
                               min_size=1, max_size=4))
def test_templates_and_records(text, rows):
    fd, name = tempfile.mkstemp(suffix=".prompt.yaml")
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    path = Path(name)
    try:
        try:
            template = load_template(path)
        except BadTemplate as exc:
            assert exc.file == str(path)
            return
        records = [Record(i + 1, row) for i, row in enumerate(rows)]
        try:
            check_fields(records, template, "data.jsonl")
        except (BadTemplate, BadDataset) as exc:
            assert exc.line is not None and exc.field is not None, exc.to_data()
            return
        for record in records:
            try:
                template.render(record.fields)
            except BadTemplate as exc:
                assert exc.file == str(path) and exc.field in ("prompt", "response")
    finally:
        path.unlink()
