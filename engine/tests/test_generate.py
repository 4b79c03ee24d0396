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
