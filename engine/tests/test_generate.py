"""The generate request: one cached base model, adapters switched on the same weights, left-padded batches."""
from __future__ import annotations

import json

import pytest

from conftest import short_records

from qlora_engine.errors import BadDataset
from qlora_engine.generate import Generator, cut_at_stop


@pytest.fixture(scope="module")
def generator():
    return Generator()


def params(run, adapter, records, **extra):
    return {"config": run["config"], "adapter": adapter, "records": records, "maxNewTokens": 10, "temperature": 0,
            "topP": 1.0, "seed": 0, "batchSize": 8, **extra}


def records():
    # Different lengths, so the batch is really left-padded; the first three were trained on.
    rs = short_records(6, dialogue_chars=100)[:3] + short_records(2, offset=50, dialogue_chars=60)
    return [{"dialogue": r["dialogue"]} for r in rs]


def texts(result):
    return [c["text"] for c in result["completions"]]


@pytest.mark.parametrize("use_adapter", [False, True], ids=["base", "adapter"])
def test_greedy_batch_equals_one_by_one(trained_run, generator, use_adapter):
    adapter = str(trained_run["run_dir"] / "adapter") if use_adapter else None
    batched = generator.generate(params(trained_run, adapter, records(), batchSize=5))
    single = generator.generate(params(trained_run, adapter, records(), batchSize=1))
    assert texts(batched) == texts(single)
    assert [c["newTokens"] for c in batched["completions"]] == [c["newTokens"] for c in single["completions"]]
    prompt_tokens = [c["promptTokens"] for c in batched["completions"]]
    assert len(set(prompt_tokens)) > 1 and all(1 <= c["newTokens"] <= 10 for c in batched["completions"])
    assert batched["seconds"] > 0


def test_loading_is_timed_apart_from_generating(trained_run):
    """loadSeconds: the model and the adapter loaded by this request (the evaluation report's `loading`); a
    request on the model and adapter already held loads nothing."""
    adapter = str(trained_run["run_dir"] / "adapter")
    fresh = Generator()
    first = fresh.generate(params(trained_run, adapter, records()[:1]))
    again = fresh.generate(params(trained_run, adapter, records()[:1]))
    assert first["loadSeconds"] > 0.01 and first["seconds"] > 0
    assert 0 <= again["loadSeconds"] < 0.01 < first["loadSeconds"]


def test_adapter_and_base_differ_on_one_loaded_model(trained_run, generator):
    adapter = str(trained_run["run_dir"] / "adapter")
    base = generator.generate(params(trained_run, None, records()))
    tuned = generator.generate(params(trained_run, adapter, records()))
    base_again = generator.generate(params(trained_run, None, records()))
    assert texts(tuned) != texts(base)
    assert texts(base_again) == texts(base)  # disable_adapter gives the base back exactly
    # the adapter learned the training summaries: the first words of one of them come back
    trained = short_records(6, dialogue_chars=100)[:3]
    assert any(t.strip() and r["summary"].startswith(t.strip()[:12]) for t, r in zip(texts(tuned), trained))
    assert generator._loaded == 1  # the base model was loaded once for all of it


@pytest.mark.parametrize("batch_size", [1, 3])
def test_adapter_and_base_in_one_batch_equal_separate_runs(trained_run, generator, batch_size):
    """alsoBase: each prompt as an adapter row and a base row of the same batch gives, token for token, what two
    separate requests give (greedy, fp32 on the CPU)."""
    adapter = str(trained_run["run_dir"] / "adapter")
    both = generator.generate(params(trained_run, adapter, records(), batchSize=batch_size, alsoBase=True))
    tuned = generator.generate(params(trained_run, adapter, records(), batchSize=batch_size))
    base = generator.generate(params(trained_run, None, records(), batchSize=batch_size))
    assert texts(both) == texts(tuned) and texts(tuned) != texts(base)
    assert [c["text"] for c in both["baseCompletions"]] == texts(base)
    assert [c["newTokens"] for c in both["completions"]] == [c["newTokens"] for c in tuned["completions"]]
    assert [c["newTokens"] for c in both["baseCompletions"]] == [c["newTokens"] for c in base["completions"]]
    assert generator._loaded == 1


def test_also_base_needs_an_adapter(trained_run, generator):
    from qlora_engine.errors import InvalidParams
    with pytest.raises(InvalidParams) as info:
        generator.generate(params(trained_run, None, records(), alsoBase=True))
    assert info.value.field == "alsoBase"


def test_stop_strings_cut_the_text(trained_run, generator, tmp_path):
    adapter = str(trained_run["run_dir"] / "adapter")
    free = generator.generate(params(trained_run, adapter, records()[:1], maxNewTokens=16))["completions"][0]
    words = free["text"].split()
    assert len(words) >= 3, free
    stop = " " + words[2]  # a string the free run produced, after its first two words
    template = tmp_path / "stop.prompt.yaml"
    template.write_text(trained_run["ws"].template.read_text() + f"stop: {json.dumps([stop])}\n")
    config = {**trained_run["config"], "template": str(template)}
    cut = generator.generate({**params(trained_run, adapter, records()[:1], maxNewTokens=16), "config": config})
    cut = cut["completions"][0]
    assert cut["text"] == free["text"][:free["text"].index(stop)]
    assert cut["newTokens"] < free["newTokens"] or free["newTokens"] == 16 and cut["newTokens"] < 16


def test_sampling_is_seeded(trained_run, generator):
    p = params(trained_run, None, records()[:2], temperature=1.0, topP=0.9, seed=5)
    assert texts(generator.generate(p)) == texts(generator.generate(p))


def test_missing_prompt_field(trained_run, generator):
    with pytest.raises(BadDataset) as info:
        generator.generate(params(trained_run, None, [{"dialogue": "a"}, {"text": "b"}]))
    assert info.value.line == 2 and info.value.field == "dialogue"


def test_cut_at_stop():
    assert cut_at_stop("abc ### def ## x", ["##", "###"]) == "abc "
    assert cut_at_stop("abc", ["###"]) == "abc"


def test_adapter_rewritten_in_place_is_reloaded(trained_run, generator, tmp_path):
    import os
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "adapter"
    shutil.copytree(trained_run["run_dir"] / "adapter", folder)
    tuned = texts(generator.generate(params(trained_run, str(folder), records())))
    base = texts(generator.generate(params(trained_run, None, records())))
    # Retrain "in place": here, zero lora_B, which makes the adapter a no-op, so its output must be the base's.
    weights = load_file(str(folder / "adapter_model.safetensors"))
    zeroed = {k: (v * 0 if "lora_B" in k else v) for k, v in weights.items()}
    save_file(zeroed, str(folder / "adapter_model.safetensors"))
    stat = (folder / "adapter_model.safetensors").stat()
    os.utime(folder / "adapter_model.safetensors", (stat.st_atime, stat.st_mtime + 10))
    assert tuned != base
    assert texts(generator.generate(params(trained_run, str(folder), records()))) == base


def test_not_an_adapter_folder(trained_run, generator, tmp_path):
    from qlora_engine.errors import ModelNotFound
    with pytest.raises(ModelNotFound) as info:
        generator.generate(params(trained_run, str(tmp_path), records()[:1]))
    assert info.value.field == "adapter"


def _raw_greedy(generator, prompt, max_new):
    """Token ids a plain HF greedy generate gives for one prompt (no stop strings), with the adapter now active."""
    import torch
    tok = generator._tokenizer
    encoded = tok([prompt], return_tensors="pt")
    with torch.inference_mode():
        out = generator._model.generate(**encoded, max_new_tokens=max_new, do_sample=False,
                                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return out[0, encoded["input_ids"].shape[1]:].tolist()


def test_new_tokens_end_where_the_stop_string_is_complete(trained_run, generator, tmp_path):
    """In a batch, a row stopped by a stop string counts the tokens up to the one that completed it, not the padding
    after it, while its neighbour goes on; the text is cut before the stop string."""
    adapter = str(trained_run["run_dir"] / "adapter")
    recs = records()[:2]
    free = generator.generate(params(trained_run, adapter, recs, maxNewTokens=12))["completions"]
    tok = generator._tokenizer
    from qlora_engine.generate import render_prompts
    from qlora_engine.template import load_template
    prompts = render_prompts(load_template(str(trained_run["ws"].template)), recs)
    ids = [_raw_greedy(generator, p, 12) for p in prompts]
    assert [tok.decode(i, skip_special_tokens=True) for i in ids] == [c["text"] for c in free]
    # a stop string that row 0 completes with its 3rd token (and that row 1 may or may not produce)
    stop = tok.decode(ids[0][2:3])
    assert stop.strip() and stop not in tok.decode(ids[0][:2]), (stop, ids[0])
    template = tmp_path / "stop.prompt.yaml"
    template.write_text(trained_run["ws"].template.read_text() + f"stop: {json.dumps([stop])}\n")
    config = {**trained_run["config"], "template": str(template)}
    cut = generator.generate({**params(trained_run, adapter, recs, maxNewTokens=12), "config": config})["completions"]

    def expected(row):
        for k in range(1, len(row) + 1):
            if stop in tok.decode(row[:k], skip_special_tokens=True):
                return k
        return row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)

    assert [c["newTokens"] for c in cut] == [expected(i) for i in ids]
    assert cut[0]["newTokens"] == 3 and cut[0]["text"] == tok.decode(ids[0][:2], skip_special_tokens=True)
    assert [c["text"] for c in cut] == [cut_at_stop(c["text"], [stop]) for c in free]


def test_a_too_long_prompt_names_its_record_in_a_later_batch(trained_run, generator):
    recs = records()
    recs[4] = {"dialogue": " ".join(["word"] * 300)}
    with pytest.raises(BadDataset) as info:
        generator.generate(params(trained_run, None, recs, batchSize=2))
    assert info.value.line == 5 and info.value.field == "max_length" and "records[4]" in info.value.message


def test_greedy_is_the_default_and_the_seed_matters_when_sampling(trained_run, generator):
    recs = records()[:3]
    p = params(trained_run, None, recs)
    implicit = {k: v for k, v in p.items() if k not in ("temperature", "topP", "seed")}
    assert texts(generator.generate(implicit)) == texts(generator.generate(p))
    sampled = [texts(generator.generate({**p, "temperature": 1.0, "seed": s})) for s in (1, 2, 1)]
    assert sampled[0] == sampled[2] and sampled[0] != sampled[1]
    assert sampled[0] != texts(generator.generate(p))


def test_streamed_text_grows_to_the_completion(trained_run, generator):
    """streamId: generate/didStream notifications per row, text growing by prefixes, the last one done and equal to
    the completion (adapter and base rows of one mixed batch alike)."""
    adapter = str(trained_run["run_dir"] / "adapter")
    sent = []
    result = generator.generate(params(trained_run, adapter, records()[:2], batchSize=2, alsoBase=True,
                                       streamId="s1"), notify=sent.append)
    assert {n["streamId"] for n in sent} == {"s1"}
    for index in (0, 1):
        for base, final in ((False, result["completions"][index]), (True, result["baseCompletions"][index])):
            texts_ = [n["text"] for n in sent if n["index"] == index and n["base"] is base]
            done = [n["done"] for n in sent if n["index"] == index and n["base"] is base]
            assert len(texts_) >= 2 and done[-1] is True and done.count(True) == 1
            assert all(b.startswith(a.rstrip()) for a, b in zip(texts_, texts_[1:])), texts_
            assert texts_[-1] == final["text"]


def test_without_stream_id_nothing_is_streamed(trained_run, generator):
    sent = []
    generator.generate(params(trained_run, None, records()[:1]), notify=sent.append)
    assert sent == []


def test_long_prompts_prefill_in_chunks_with_the_same_result(trained_run, generator, monkeypatch):
    """A prompt longer than PREFILL_CHUNK is prefilled chunk by chunk: the same greedy tokens as in one piece."""
    from qlora_engine import decode
    from qlora_engine import generate as gen
    long = [{"dialogue": " ".join(r["dialogue"] for r in records()[:3])}]
    whole = generator.generate(params(trained_run, None, long, maxNewTokens=8))
    width = whole["completions"][0]["promptTokens"]
    assert width > 64
    chunks = []
    original = decode._prefill_mask

    def spy(valid, start, end, length):  # records each prefill chunk's span
        chunks.append((start, end))
        return original(valid, start, end, length)
    monkeypatch.setattr(gen, "PREFILL_CHUNK", 32)
    monkeypatch.setattr(decode, "_prefill_mask", spy)
    chunked = generator.generate(params(trained_run, None, long, maxNewTokens=8))
    assert chunks == [(s, min(s + 32, width)) for s in range(0, width, 32)]
    assert texts(chunked) == texts(whole)
