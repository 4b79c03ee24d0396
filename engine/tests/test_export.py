"""Merged export: the adapter folded into the base loads with plain transformers and computes what base + adapter do."""
from __future__ import annotations

import json

import pytest
import torch

from qlora_engine.errors import InvalidParams, ModelNotFound
from qlora_engine.export import MANIFEST, export_merged


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_merged_model_equals_base_plus_adapter(trained_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = trained_run["run_dir"] / "adapter"
    stages = []
    out = tmp_path / "merged"
    result = export_merged(trained_run["config"], adapter, out, "float32", lambda s, f: stages.append(s))
    assert stages[-1] == "done" and "merging the adapter" in stages
    assert {"model.safetensors", "config.json", "tokenizer.json", MANIFEST} <= set(p.name for p in out.iterdir())
    assert not any(p.name.startswith(".merged.exporting") for p in tmp_path.iterdir())
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["dtype"] == "float32" and manifest["trainedOnQuantization"] == "none"
    assert result["files"] == manifest["files"] and result["out"] == str(out)

    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(trained_run["config"]["model"], dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(adapter)).eval()
    ids = AutoTokenizer.from_pretrained(str(out))("A: hello there\nB: hi, how are you?", return_tensors="pt").input_ids
    expected, got = _logits(with_adapter, ids), _logits(merged, ids)
    assert (got - expected).abs().max().item() < 1e-4
    with with_adapter.disable_adapter():  # the adapter really changes the model: the merge is not a no-op
        assert (_logits(with_adapter, ids) - expected).abs().max().item() > 1e-2


def test_bfloat16_export_is_close(trained_run, tmp_path):
    from transformers import AutoModelForCausalLM
    export_merged(trained_run["config"], trained_run["run_dir"] / "adapter", tmp_path / "bf16", "bfloat16")
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "bf16"))
    assert next(model.parameters()).dtype == torch.bfloat16


def test_refuses_an_existing_folder_and_a_missing_adapter(trained_run, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidParams) as info:
        export_merged(trained_run["config"], trained_run["run_dir"] / "adapter", tmp_path / "taken", "float32")
    assert info.value.field == "out" and (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    with pytest.raises(ModelNotFound) as info:
        export_merged(trained_run["config"], tmp_path / "no-adapter", tmp_path / "new", "float32")
    assert info.value.field == "adapter" and not (tmp_path / "new").exists()
    with pytest.raises(InvalidParams):
        export_merged(trained_run["config"], trained_run["run_dir"] / "adapter", tmp_path / "new", "int4")


def test_a_failed_write_leaves_nothing(trained_run, tmp_path, monkeypatch):
    from qlora_engine.errors import WriteFailed
    import transformers

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(transformers.PreTrainedTokenizerBase, "save_pretrained", full)
    with pytest.raises(WriteFailed):
        export_merged(trained_run["config"], trained_run["run_dir"] / "adapter", tmp_path / "out", "float32")
    assert list(tmp_path.iterdir()) == []
