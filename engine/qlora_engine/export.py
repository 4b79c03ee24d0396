"""A run's adapter merged into its base model: one transformers folder that loads without peft, or one GGUF file
(gguf_export.py).

The base is loaded in the export dtype without quantization (a run trained on a 4-bit base is merged into the
base's original weights, as peft's merge_and_unload expects; the record says so), the LoRA adapter is attached and
folded into the weights (W + B·A·alpha/r), and the model is saved as safetensors with its config, tokenizer and chat
template (the config's chat_template when the run trained with one: the format the adapter learned). The folder is written beside its destination and renamed into place, so a crash leaves nothing
half-written; `qlora-export.json` records what was merged.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from .config import parse_config
from .errors import InvalidParams, ModelNotFound
from .gguf_export import check_target, write_gguf
from .chat import load_chat_template
from .model import check_model, load_base_model, load_tokenizer
from .model_folder import write_model_folder

MANIFEST = "qlora-export.json"
DTYPES = ("bfloat16", "float16", "float32")
Progress = Callable[[str, Optional[float]], None]


def _check_adapter(adapter: Path) -> None:
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise ModelNotFound(f"{adapter} is not a PEFT adapter folder (needs adapter_config.json and "
                            "adapter_model.safetensors); export a run that completed", file=str(adapter),
                            field="adapter")


def _merged(raw_config: Any, adapter: Path, dtype: str, progress: Progress) -> Tuple[Any, Any, Dict[str, Any]]:
    """The config's base in `dtype` without quantization with `adapter` folded in, its tokenizer, and the record of
    what was merged."""
    config = parse_config(raw_config)
    trained_on = config.quantization
    plain = dataclasses.replace(config, quantization="none", compute_dtype=dtype)
    source, _ = check_model(plain)

    from peft import PeftModel
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # progress goes through `progress`
    try:
        progress("loading the base model", None)
        base = load_base_model(plain, source)
        tokenizer = load_tokenizer(plain, source)
        if config.chat_template is not None:  # the chat template the adapter learned, not the base's (or none)
            tokenizer.chat_template = load_chat_template(config.chat_template, tokenizer).source
        progress("merging the adapter", None)
        model = PeftModel.from_pretrained(base, str(adapter), is_trainable=False).merge_and_unload()
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    model.config.name_or_path = ""
    record = {"base": config.model, "adapter": str(adapter.resolve()), "dtype": dtype,
              "trainedOnQuantization": trained_on,
              "baseWeights": "original" if trained_on == "none" else
              f"original (the adapter trained against their {trained_on} quantization)",
              "parameters": sum(p.numel() for p in model.parameters())}
    return model, tokenizer, record


def export_merged(raw_config: Any, adapter: Path, out: Path, dtype: str,
                  progress: Progress = lambda stage, fraction: None) -> Dict[str, Any]:
    """Merge `adapter` into the config's base model and write the folder `out` (which must not exist)."""
    adapter, out = Path(adapter), Path(out)
    if dtype not in DTYPES:
        raise InvalidParams(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", field="dtype")
    if out.exists():
        raise InvalidParams(f"{out} already exists; export into a new folder (nothing is overwritten)",
                            file=str(out), field="out")
    _check_adapter(adapter)
    model, tokenizer, record = _merged(raw_config, adapter, dtype, progress)
    progress("saving", None)
    manifest = write_model_folder(out, model, tokenizer, MANIFEST, record, staging_label="exporting",
                                  what="the merged model")
    progress("done", 1.0)
    return {"out": str(out), **manifest}


def export_gguf(raw_config: Any, adapter: Path, out: Path, quant: str,
                progress: Progress = lambda stage, fraction: None) -> Dict[str, Any]:
    """Merge `adapter` into the config's base model (in fp32) and write the GGUF file `out` (which must not exist)
    with its weights in `quant` (gguf_export.py)."""
    adapter, out = Path(adapter), Path(out)
    check_target(out, quant)
    _check_adapter(adapter)
    model, tokenizer, record = _merged(raw_config, adapter, "float32", progress)
    written = write_gguf(model, tokenizer, out, quant, progress)
    progress("done", 1.0)
    return {"out": str(out), **record, "dtype": quant, **written}
