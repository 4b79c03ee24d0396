"""Chat datasets (docs/chat-datasets.md): each format trains with the loss on the assistant's tokens only (checked
token by token against an independent tokenization of the whole text), ROUGE and generation use the conversation's
prompt, and every kind of bad input is refused naming its file, line and field."""
from __future__ import annotations

import json

import pytest

from conftest import REPO, TINY, short_records, write_jsonl

from qlora_engine.chat import conversation, load_chat_template
from qlora_engine.errors import BadConfig, BadDataset, BadTemplate
from qlora_engine.generate import Generator
from qlora_engine.recipe import Recipe
from qlora_engine.sequence import IGNORE

CHATML = REPO / "samples" / "chat" / "chatml.jinja"
SMOLLM2 = REPO / "samples" / "models" / "smollm2-135m-instruct"
ASK = "Summarize:\n"


def chat_records(fmt, n=12, *, follow_up_every=3):
    """Short DialogSum records in `fmt`; every third (sharegpt, messages) asks a second question about the topic."""
    out = []
    for i, r in enumerate(short_records(n, dialogue_chars=100)):
        turns = [("user", ASK + r["dialogue"]), ("assistant", r["summary"])]
        if follow_up_every and i % follow_up_every == 2:
            turns += [("user", "Topic?"), ("assistant", r["topic"])]
        if fmt == "messages":
            out.append({"messages": [{"role": "system", "content": "Be brief."}] +
                        [{"role": role, "content": text} for role, text in turns]})
        elif fmt == "sharegpt":
            names = {"user": "human", "assistant": "gpt"}
            out.append({"system": "Be brief.", "conversations": [{"from": names[role], "value": text}
                                                                 for role, text in turns]})
        else:
            out.append({"instruction": "Summarize:", "input": r["dialogue"], "output": r["summary"]})
    return out


def chat_config(ws, fmt, records=None, **overrides):
    write_jsonl(ws.train, records if records is not None else chat_records(fmt))
    from conftest import deep_merge
    config = ws.config(**deep_merge({"data": {"format": fmt}, "chat_template": str(CHATML), "max_length": 256},
                                    overrides))
    config["template"] = None
    return config


def trained_text(turns):
    """What the loss must cover, worked out without the segment code: every assistant content and its <|im_end|>."""
    return [t["content"] + "<|im_end|>" for t in turns if t["role"] == "assistant"]


@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "alpaca"])
def test_each_format_trains_with_the_loss_on_assistant_tokens_only(ws, fmt, tokenizer):
    records = chat_records(fmt)
    config = chat_config(ws, fmt, records, data={"format": "auto", "validation_split": 0.0},
                         train={"max_steps": 3})
    recipe = Recipe(config, ws.runs / fmt)
    assert recipe.validate()["trainRecords"] == len(records)
    assert recipe.config.data.format == fmt  # auto read it off the first record
    template = load_chat_template(str(CHATML), tokenizer)
    for record, row in zip(records, recipe._dataset.train):
        turns = conversation(record, fmt)
        full = template.render(turns, False)
        # Token by token against the whole text tokenized at once: the same ids (each span starts and ends on a
        # token boundary), and a label exactly on the tokens inside an assistant turn's content and end marker.
        encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        assert row.input_ids == encoded["input_ids"]
        spans, at = [], 0
        for text in trained_text(turns):
            start = full.index(text, at)
            spans.append((start, start + len(text)))
            at = start + len(text)
        for j, ((lo, hi), token) in enumerate(zip(encoded["offset_mapping"], row.input_ids)):
            inside = any(s <= lo and hi <= e for s, e in spans)
            assert row.labels[j] == (token if inside and j > 0 else IGNORE), (fmt, j, full[lo:hi])
        assert tokenizer.decode([t for t in row.labels if t != IGNORE]) == "".join(trained_text(turns))
    end = recipe.run()
    assert end["status"] == "completed" and end["adapterPath"]
    saved = (ws.runs / fmt / "config.yaml").read_text()
    assert f"format: {fmt}" in saved and "chat_template:" in saved
    if fmt == "messages":  # an export carries the chat template the adapter learned (Phi-2 has none of its own)
        from qlora_engine.export import export_merged
        from transformers import AutoTokenizer
        export_merged(config, ws.runs / fmt / "adapter", ws.root / "merged", "float32")
        assert AutoTokenizer.from_pretrained(str(ws.root / "merged")).chat_template == CHATML.read_text()


def test_loss_on_all_labels_every_token_but_the_first(ws):
    config = chat_config(ws, "messages", loss_on="all", data={"validation_split": 0.0})
    recipe = Recipe(config, ws.runs / "all")
    recipe.validate()
    for row in recipe._dataset.train:
        assert row.labels == [IGNORE] + row.input_ids[1:]


def test_rouge_and_generation_use_the_conversation_up_to_its_last_answer(ws, tokenizer):
    config = chat_config(ws, "sharegpt", data={"validation_split": 0.25},
                         train={"max_steps": 2, "rouge_every": 2, "rouge_samples": 2, "eval_every": 2},
                         eval={"max_new_tokens": 4})
    recipe = Recipe(config, ws.runs / "rouge")
    recipe.validate()
    sample = recipe._rouge
    kept = recipe._dataset.validation_records[:2]
    turns = [conversation(r.fields, "sharegpt") for r in kept]
    assert sample.references == [[[t for t in ts if t["role"] == "assistant"][-1]["content"]] for ts in turns]
    assert all(p.endswith("<|im_start|>assistant\n") for p in sample.prompts) and sample.stops == ("<|im_end|>",)
    assert recipe.run()["status"] == "completed"
    lines = [json.loads(line) for line in (ws.runs / "rouge" / "metrics.jsonl").read_text().splitlines()]
    assert any("rouge" in m for m in lines if m["type"] == "eval")

    # generate: a selection as the run's format (one user turn, no answer yet) and a full test record
    result = Generator().generate({"config": config,
                                   "adapter": str(ws.runs / "rouge" / "adapter"),
                                   "records": [{"conversations": [{"from": "human", "value": "Summarize: hi"}]},
                                               chat_records("sharegpt", 1)[0]],
                                   "maxNewTokens": 3, "temperature": 0, "topP": 1.0, "seed": 0, "batchSize": 2})
    assert len(result["completions"]) == 2
    with pytest.raises(BadDataset) as info:
        Generator().generate({"config": config, "adapter": None, "records": [{"conversations": []}],
                              "maxNewTokens": 3, "temperature": 0, "topP": 1.0, "seed": 0, "batchSize": 2})
    assert info.value.field == "conversations" and "records[0]" in info.value.message


@pytest.mark.parametrize("fmt,record,field,words", [
    ("messages", {"messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role", "unknown role"),
    ("messages", {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                               {"role": "assistant", "content": "c"}]}, "messages[1]", "out of order"),
    ("messages", {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"},
                               {"role": "assistant", "content": "c"}]}, "messages[1]", "out of order"),
    ("messages", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}]},
     "messages[1].content", "empty turn"),
    ("messages", {"messages": [{"role": "user", "content": "a"}]}, "messages[0]", "ends without an assistant"),
    ("messages", {"messages": "hi"}, "messages", "non-empty list"),
    ("sharegpt", {"conversations": [{"from": "gpt", "value": "a"}]}, "conversations[0]", "starts with assistant"),
    ("sharegpt", {"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "b"}]},
     "conversations[0].value", "not a string"),
    ("alpaca", {"instruction": "a", "output": ""}, "output", "empty turn"),
    ("alpaca", {"instruction": "a", "input": 4, "output": "b"}, "input", "not a string"),
])
def test_a_malformed_conversation_names_its_file_line_and_field(ws, fmt, record, field, words):
    good = chat_records(fmt, 3)
    config = chat_config(ws, fmt, good[:2] + [record] + good[2:])
    with pytest.raises(BadDataset) as info:
        Recipe(config, ws.runs / "bad").validate()
    assert (info.value.file, info.value.line, info.value.field) == (str(ws.train), 3, field)
    assert words in info.value.message and info.value.message.startswith("train.jsonl:3: ")
    assert not (ws.runs / "bad").exists()


def test_format_errors_name_the_config_field(ws):
    write_jsonl(ws.train, [{"question": "a", "answer": "b"}])
    config = ws.config()
    config["template"] = None
    with pytest.raises(BadConfig) as info:
        Recipe(config, ws.runs / "x").validate()
    assert info.value.field == "data.format" and "answer, question" in info.value.message

    with pytest.raises(BadConfig) as info:  # a prompt template with a chat format
        Recipe(ws.config(data={"format": "messages"}), ws.runs / "x").validate()
    assert info.value.field == "template"

    with pytest.raises(BadConfig) as info:  # scored against the last answer, never named fields
        Recipe(chat_config(ws, "messages", eval={"references": ["summary"]}), ws.runs / "x").validate()
    assert info.value.field == "eval.references"

    config = chat_config(ws, "messages")
    config["chat_template"] = None
    with pytest.raises(BadConfig) as info:  # Phi-2's tokenizer has no chat template
        Recipe(config, ws.runs / "x").validate()
    assert info.value.field == "chat_template" and str(TINY) in info.value.message

    with pytest.raises(BadConfig) as info:
        Recipe(chat_config(ws, "messages", chat_template=str(ws.root / "nope.jinja")), ws.runs / "x").validate()
    assert info.value.field == "chat_template" and "not found" in info.value.message
    assert not (ws.runs / "x").exists()


def test_a_template_that_rewrites_earlier_turns_is_refused(ws):
    # Renders only the last assistant answer in full: earlier turns change once a later one exists.
    rewriting = ws.root / "rewrite.jinja"
    rewriting.write_text("{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}[answer]"
                         "{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}", encoding="utf-8")
    config = chat_config(ws, "messages", chat_template=str(rewriting))
    with pytest.raises(BadTemplate) as info:
        Recipe(config, ws.runs / "x").validate()
    assert info.value.field == "chat_template" and "prefix" in info.value.message


def test_smollm2_uses_its_own_chat_template():
    from transformers import AutoTokenizer
    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip("SmolLM2-135M-Instruct is not imported (npm run setup:engine)")
    own = load_chat_template(None, AutoTokenizer.from_pretrained(str(SMOLLM2)), model=str(SMOLLM2))
    assert own.origin.endswith("chat_template.jinja") and own.stop == ("<|im_end|>",)
    turns = conversation({"instruction": "Hi", "output": "Hello"}, "alpaca")
    # No system turn given: SmolLM2's template writes its default one, untrained.
    assert own.segments(turns) == [
        ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
         "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", False), ("Hello<|im_end|>", True), ("\n", False)]
