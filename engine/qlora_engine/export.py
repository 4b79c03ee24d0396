"""A run's adapter merged into its base model: one transformers folder that loads without peft.

The base is loaded in the export dtype without quantization (a run trained on a 4-bit base is merged into the
base's original weights, as peft's merge_and_unload expects; the record says so), the LoRA adapter is attached and
folded into the weights (W + B·A·alpha/r), and the model is saved as safetensors with its config, tokenizer and chat
template. The folder is written beside its destination and renamed into place, so a crash leaves nothing
half-written; `qlora-export.json` records what was merged.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .config import parse_config
from .errors import InvalidParams, ModelNotFound, WriteFailed
from .model import check_model, load_base_model, load_tokenizer

MANIFEST = "qlora-export.json"
DTYPES = ("bfloat16", "float16", "float32")
Progress = Callable[[str, Optional[float]], None]


def export_merged(raw_config: Any, adapter: Path, out: Path, dtype: str,
                  progress: Progress = lambda stage, fraction: None) -> Dict[str, Any]:
    """Merge `adapter` into the config's base model and write the folder `out` (which must not exist)."""
    adapter, out = Path(adapter), Path(out)
    if dtype not in DTYPES:
        raise InvalidParams(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", field="dtype")
    if out.exists():
        raise InvalidParams(f"{out} already exists; export into a new folder (nothing is overwritten)",
                            file=str(out), field="out")
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise ModelNotFound(f"{adapter} is not a PEFT adapter folder (needs adapter_config.json and "
                            "adapter_model.safetensors); export a run that completed", file=str(adapter),
                            field="adapter")
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
        progress("merging the adapter", None)
        model = PeftModel.from_pretrained(base, str(adapter), is_trainable=False).merge_and_unload()
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    model.config.name_or_path = ""

    staging = out.parent / f".{out.name}.exporting-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        progress("saving", None)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        files = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}
        manifest = {
            "base": config.model, "adapter": str(adapter.resolve()), "dtype": dtype, "trainedOnQuantization": trained_on,
            "baseWeights": "original" if trained_on == "none" else
            f"original (the adapter trained against their {trained_on} quantization)",
            "parameters": sum(p.numel() for p in model.parameters()), "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        os.replace(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise WriteFailed(f"could not write the merged model to {out}: {exc.strerror or exc}", file=str(out)) from None
    progress("done", 1.0)
    return {"out": str(out), **manifest}
