"""Reading, checking, tokenizing, splitting and batching training data."""
from __future__ import annotations

import pytest

from conftest import short_records, write_jsonl

from qlora_engine.config import parse_config
from qlora_engine.data import (IGNORE, Sequence, check_fields, collate, encode, load_dataset, read_jsonl,
                               split_validation)
from qlora_engine.errors import BadDataset, BadTemplate
from qlora_engine.template import load_template


def test_invalid_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"dialogue": "a", "summary": "b"}\n\n{"dialogue": "c", "summary": }\n')
    with pytest.raises(BadDataset) as info:
        read_jsonl(path)
    assert info.value.file == str(path) and info.value.line == 3
    assert "train.jsonl:3:30" in info.value.message


def test_non_object_line_and_empty_file(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"a": 1}, [1, 2]])
    with pytest.raises(BadDataset) as info:
        read_jsonl(path)
    assert info.value.line == 2 and "JSON object" in info.value.message
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(BadDataset) as info:
        read_jsonl(empty)
    assert "no records" in info.value.message


def test_missing_file_names_the_config_field(tmp_path):
    with pytest.raises(BadDataset) as info:
        read_jsonl(tmp_path / "nope.jsonl", field="data.validation")
    assert info.value.field == "data.validation"


def test_field_missing_later_is_the_records_fault(ws):
    template = load_template(ws.template)
    path = write_jsonl(ws.root / "d.jsonl", [{"dialogue": "a", "summary": "b"}, {"dialogue": "c", "summary": "d"},
                                              {"dialogue": "e", "summry": "f", "topic": "t"}])
    with pytest.raises(BadDataset) as info:
        check_fields(read_jsonl(path), template, path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 3, "summary")
    assert err.message == ("d.jsonl:3: field 'summary' used by summarize.prompt.yaml is missing "
                           "(record has: dialogue, summry, topic).")


def test_field_missing_from_first_record_is_the_templates_fault(ws):
    ws.template.write_text('prompt: "{{ dialogue }}"\nresponse: "{{ summry }}"\n')
    template = load_template(ws.template)
    records = read_jsonl(ws.train)
    with pytest.raises(BadTemplate) as info:
        check_fields(records, template, ws.train)
    err = info.value
    assert (err.file, err.line, err.field) == (str(ws.train), 1, "summry")
    assert "train.jsonl:1: field 'summry' used by summarize.prompt.yaml is missing" in err.message
    assert "dialogue, fname, summary, topic" in err.message


def test_null_field(ws):
    path = write_jsonl(ws.root / "d.jsonl", [{"dialogue": "a", "summary": "b"}, {"dialogue": None, "summary": "d"}])
    with pytest.raises(BadDataset) as info:
        check_fields(read_jsonl(path), load_template(ws.template), path)
    assert info.value.line == 2 and "is null" in info.value.message


def test_response_loss_masks_the_prompt_exactly(ws, tokenizer):
    template = load_template(ws.template)
    records = read_jsonl(ws.train)[:3]
    rows, dropped = encode(records, template, tokenizer, max_length=4096, loss_on="response", path=ws.train)
    assert dropped == 0
    for record, row in zip(records, rows):
        prompt, response = template.render(record.fields)
        p = tokenizer(prompt)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"]
        assert row.input_ids == p + r + [tokenizer.eos_token_id]
        assert row.labels == [IGNORE] * len(p) + r + [tokenizer.eos_token_id]
    all_rows, _ = encode(records, template, tokenizer, max_length=4096, loss_on="all", path=ws.train)
    assert all_rows[0].labels == [IGNORE] + all_rows[0].input_ids[1:]


def test_too_long_records_are_dropped_and_counted(ws, tokenizer):
    records = [{"dialogue": "short", "summary": "s"}, {"dialogue": "word " * 300, "summary": "s"},
               {"dialogue": "also short", "summary": "s"}]
    write_jsonl(ws.train, records)
    config = parse_config(ws.config(max_length=64, data={"validation_split": 0.0}))
    dataset = load_dataset(config, load_template(ws.template), tokenizer)
    assert dataset.summary == {"trainRecords": 2, "validationRecords": 0, "droppedTooLong": 1, "trainSequences": 2}
    assert all(len(row) <= 64 for row in dataset.train)


def test_validation_split_is_seeded_and_stable(ws):
    records = read_jsonl(ws.train)
    a_train, a_val = split_validation(records, 0.1, seed=42)
    b_train, b_val = split_validation(records, 0.1, seed=42)
    c_train, c_val = split_validation(records, 0.1, seed=43)
    assert [r.line for r in a_val] == [r.line for r in b_val]
    assert [r.line for r in a_val] != [r.line for r in c_val]
    assert len(a_val) == 2 and len(a_train) == len(records) - 2
    assert not {r.line for r in a_val} & {r.line for r in a_train}
    # at least one record whenever the fraction is positive
    assert len(split_validation(records[:3], 0.01, seed=1)[1]) == 1
    assert split_validation(records, 0.0, seed=1) == (records, [])


def test_validation_file_is_used_when_given(ws, tokenizer):
    val = write_jsonl(ws.root / "val.jsonl", short_records(3, offset=100))
    config = parse_config(ws.config(data={"validation": str(val)}))
    dataset = load_dataset(config, load_template(ws.template), tokenizer)
    assert dataset.summary["trainRecords"] == 24 and dataset.summary["validationRecords"] == 3


def test_collate_right_pads_with_eos_and_ignores_pad():
    rows = [Sequence([5, 6, 7], [IGNORE, 6, 7], (3,)), Sequence([8], [IGNORE], (1,))]
    batch = collate(rows, pad_id=99, packed=False)
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 99, 99]]
    assert batch.labels.tolist() == [[IGNORE, 6, 7], [IGNORE, IGNORE, IGNORE]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.tokens == 4 and batch.target_tokens == 2 and batch.records == 2
    assert batch.segment_ids is None
