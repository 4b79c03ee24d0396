"""GGUF → a transformers model folder: dequantized safetensors weights, config, tokenizer and chat template.

transformers reads GGUF (through the `gguf` package) but a GGUF-loaded model refuses `save_pretrained`; so the
weights are loaded into a fresh model built from the same config and saved from there. The folder is written
beside its destination and renamed into place, so a crash leaves no half-written model; `qlora-import.json`
records the source's SHA-256 and every file's size, which makes a second import of the same file a no-op.

Run directly (npm's postinstall does): python -m qlora_engine.gguf_import FILE.gguf --out DIR
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .errors import BadModelFile, InvalidParams
from .model_folder import write_model_folder

MANIFEST = "qlora-import.json"
Progress = Callable[[str, Optional[float]], None]


def _quiet(message: str, fraction: Optional[float]) -> None:
    pass


def sha256(path: Path, progress: Progress = _quiet) -> str:
    digest = hashlib.sha256()
    total = max(path.stat().st_size, 1)
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            progress("checksum", done / total)
    return digest.hexdigest()


def supported_architectures() -> List[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))  # not architectures


def inspect(source: Path) -> Dict[str, Any]:
    """Architecture and tensor types of a GGUF file; BadModelFile for a truncated file, an unsupported architecture
    or a quantization type that cannot be dequantized. Reads the header and one tensor of each type."""
    try:
        import gguf
    except ImportError:
        raise BadModelFile("reading GGUF needs the `gguf` package: pip install gguf", file=str(source)) from None
    try:
        reader = gguf.GGUFReader(str(source))
        field = reader.fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode("utf-8")
    except KeyError:
        raise BadModelFile(f"{source} has no general.architecture: not a model GGUF file", file=str(source)) from None
    except (ValueError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise BadModelFile(f"{source} is not a readable GGUF file (truncated or corrupt?): {exc}",
                           file=str(source)) from None
    supported = supported_architectures()
    if architecture not in supported:
        raise BadModelFile(f"{source}: architecture {architecture!r} cannot be imported (transformers reads GGUF of: "
                           f"{', '.join(supported)})", file=str(source), field="general.architecture")
    first_of_type: Dict[str, Any] = {}
    for tensor in reader.tensors:
        first_of_type.setdefault(tensor.tensor_type.name, tensor)
    for name, tensor in first_of_type.items():
        try:
            gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError:
            raise BadModelFile(f"{source}: tensor {tensor.name} is quantized as {name}, which cannot be dequantized "
                               f"here (gguf {getattr(gguf, '__version__', '?')})", file=str(source),
                               field=tensor.name) from None
    return {"architecture": architecture, "tensorTypes": sorted(first_of_type), "tensors": len(reader.tensors)}


def _intact(out: Path, digest: str) -> Optional[Dict[str, Any]]:
    """The manifest of a finished import of the same source, when every file it lists is there at its size."""
    try:
        manifest = json.loads((out / MANIFEST).read_text("utf-8"))
        if manifest.get("sha256") != digest:
            return None
        for name, size in manifest["files"].items():
            if (out / name).stat().st_size != size:
                return None
        return manifest
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None


def import_gguf(source: Path, out: Path, progress: Progress = _quiet) -> Dict[str, Any]:
    """Converts `source` into the folder `out`; returns the manifest plus `skipped` (already imported and intact)."""
    source, out = Path(source).resolve(), Path(out).resolve()
    if not source.is_file():
        raise InvalidParams(f"GGUF file not found: {source}", file=str(source), field="source")
    if out.exists() and not out.is_dir():
        raise InvalidParams(f"--out {out} is a file, not a folder", file=str(out), field="out")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise InvalidParams(f"--out {out} holds files that no import wrote; choose an empty or new folder",
                            file=str(out), field="out")
    digest = sha256(source, progress)
    previous = _intact(out, digest)
    if previous is not None:
        progress("already imported", 1.0)
        return {**previous, "skipped": True}
    progress("reading", None)
    facts = inspect(source)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder, name = str(source.parent), source.name
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # progress goes through `progress`; only for this import, not the engine's life
    try:
        progress("tokenizer", None)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        progress(f"dequantizing {facts['tensors']} tensors", None)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, use_safetensors=None)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain float32, not GGUF
    config.name_or_path = ""
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    del loaded

    progress("saving", None)
    manifest = write_model_folder(
        out, model, tokenizer, MANIFEST,
        {"source": str(source), "sha256": digest, **facts, "modelType": config.model_type,
         "parameters": sum(p.numel() for p in model.parameters()), "dtype": "float32"},
        staging_label="importing", what="the imported model")
    progress("done", 1.0)
    return {**manifest, "skipped": False}


def main(argv: List[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m qlora_engine.gguf_import", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    last = [""]

    def show(stage: str, fraction: Optional[float]) -> None:
        if stage != last[0]:
            print(f"  {stage} ...", file=sys.stderr, flush=True)
            last[0] = stage

    from .errors import EngineError
    try:
        result = import_gguf(args.source, args.out, show)
    except EngineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    verb = "already imported" if result["skipped"] else "imported"
    print(f"{verb}: {args.out} ({result['architecture']}, {result['parameters']:,} parameters, sha256 {result['sha256'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
