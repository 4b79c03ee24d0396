"""GGUF export: the merged model as one llama.cpp file, read back by transformers' GGUF reader (llama) or the gguf
package's (phi2, which transformers does not read) and compared with the merged model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qlora_engine.errors import BadConfig, InvalidParams, ModelNotFound
from qlora_engine.export import export_gguf, export_merged
from qlora_engine.gguf_export import _pre_tokenizer

SMOLLM2 = Path(__file__).resolve().parents[2] / "samples" / "models" / "smollm2-135m-instruct"


def _field(reader, key):
    field = reader.fields[key]
    value = field.parts[field.data[0]]
    return bytes(value).decode() if value.dtype == np.uint8 else value.tolist()[0]


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_phi_file_holds_the_merged_weights_under_llama_cpp_names(trained_run, tmp_path, quant):
    import gguf
    from safetensors.torch import load_file
    adapter = trained_run["run_dir"] / "adapter"
    out = tmp_path / f"tiny-{quant}.gguf"
    stages = []
    result = export_gguf(trained_run["config"], adapter, out, quant, lambda s, f: stages.append(s))
    assert result["architecture"] == "phi2" and result["dtype"] == quant and stages[-1] == "done"
    assert result["files"] == {out.name: out.stat().st_size}
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no staging file left
    export_merged(trained_run["config"], adapter, tmp_path / "merged", "float32")
    merged = load_file(str(tmp_path / "merged" / "model.safetensors"))

    reader = gguf.GGUFReader(str(out))
    assert _field(reader, "general.architecture") == "phi2"
    layers = _field(reader, "phi2.block_count")
    assert layers == sum(1 for k in merged if k.endswith("self_attn.q_proj.weight"))
    assert _field(reader, "tokenizer.ggml.model") == "gpt2" and _field(reader, "tokenizer.ggml.pre") == "gpt2"
    tensors = {t.name: t for t in reader.tensors}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI2, layers)
    assert len(tensors) == len(merged)
    for name, weight in merged.items():
        tensor = tensors[names.get_name(name, try_suffixes=(".weight", ".bias"))]
        got = torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type).copy()).reshape(weight.shape)
        if weight.dim() == 1:
            assert tensor.tensor_type == gguf.GGMLQuantizationType.F32 and torch.equal(got, weight), name
        elif quant == "f16":
            assert tensor.tensor_type == gguf.GGMLQuantizationType.F16
            assert torch.allclose(got, weight.half().float()), name
        else:
            assert tensor.tensor_type == gguf.GGMLQuantizationType.Q8_0
            # one scale per 32 values: the error is at most half a step of the block's max / 127
            assert (got - weight).abs().max() <= weight.abs().max() / 127, name


@pytest.mark.skipif(not (SMOLLM2 / "config.json").is_file(), reason="SmolLM2 is imported by `npm install`")
@pytest.mark.parametrize("quant,tolerance,agreement", [("f16", 0.02, 1.0), ("q8_0", 0.25, 0.8)])
def test_llama_file_loads_in_transformers_with_the_merged_model_logits(trained_run, tmp_path, quant, tolerance,
                                                                       agreement):
    """SmolLM2 (llama, grouped KV heads, tied embeddings) with a random adapter: the file, read by transformers' GGUF
    reader, gives the logits of base + adapter within the quantization's error, and the same tokenizer."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base = AutoModelForCausalLM.from_pretrained(str(SMOLLM2), dtype=torch.float32)
    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    base = AutoModelForCausalLM.from_pretrained(str(SMOLLM2), dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    config = {**trained_run["config"], "model": str(SMOLLM2), "lora": {
        "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}}
    out = tmp_path / "smol.gguf"
    assert export_gguf(config, tmp_path / "adapter", out, quant)["architecture"] == "llama"

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=out.name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=out.name)
    text = "#Person1#: How much is it? 12,345 dollars?\n#Person2#: Yes, sir."
    ids = AutoTokenizer.from_pretrained(str(SMOLLM2))(text, return_tensors="pt").input_ids
    assert tokenizer(text, return_tensors="pt").input_ids.tolist() == ids.tolist()
    assert tokenizer.chat_template
    with torch.no_grad():
        expected, got = reference(input_ids=ids).logits, model(input_ids=ids).logits
    assert (got - expected).abs().max() < tolerance * expected.std()
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= agreement


def test_bad_targets_and_inputs_are_named(trained_run, tmp_path):
    adapter = trained_run["run_dir"] / "adapter"
    taken = tmp_path / "taken.gguf"
    taken.write_text("mine")
    with pytest.raises(InvalidParams) as info:
        export_gguf(trained_run["config"], adapter, taken, "f16")
    assert info.value.field == "out" and taken.read_text() == "mine"
    with pytest.raises(InvalidParams) as info:
        export_gguf(trained_run["config"], adapter, tmp_path / "x.gguf", "q4_k")
    assert info.value.field == "quant"
    with pytest.raises(ModelNotFound):
        export_gguf(trained_run["config"], tmp_path, tmp_path / "x.gguf", "f16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.gguf"]


def test_pre_tokenizers_llama_cpp_knows():
    assert _pre_tokenizer({"type": "ByteLevel", "add_prefix_space": False}) == "gpt2"
    assert _pre_tokenizer({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                                 {"type": "ByteLevel"}]}) == "smollm"
    with pytest.raises(BadConfig):
        _pre_tokenizer({"type": "Metaspace"})
