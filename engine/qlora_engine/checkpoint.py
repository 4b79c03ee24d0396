"""Checkpoints: everything an exact resume needs, written atomically.

runs/<id>/checkpoints/step-N/
    adapter/            the LoRA weights (PEFT format: adapter_config.json + adapter_model.safetensors)
    optimizer.pt        optimizer state_dict
    scheduler.pt        LambdaLR state_dict
    rng.pt              torch CPU and CUDA generator states
    state.json          step, data position (epoch, batch index), python and numpy RNG states
A checkpoint is built in checkpoints/.tmp-step-N-*/ and renamed into place when complete, so a folder named
step-N always holds a whole checkpoint; resume ignores (and removes) temp folders.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from .files import write_json

STEP_DIR = re.compile(r"^step-(\d+)$")
TEMP_PREFIX = ".tmp-"


@dataclass
class Snapshot:
    """The training state between two optimizer steps, besides weights and optimizer."""
    step: int
    epoch: int
    batch_index: int
    rng: Dict[str, Any]


def capture_rng() -> Dict[str, Any]:
    state: Dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    try:
        import numpy as np
        state["numpy"] = np.random.get_state()
    except ImportError:
        state["numpy"] = None
    return state


def restore_rng(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("numpy") is not None:
        import numpy as np
        np.random.set_state(state["numpy"])


def _rng_to_json(rng: Dict[str, Any]) -> Dict[str, Any]:
    version, internal, gauss = rng["python"]
    out: Dict[str, Any] = {"python": [version, list(internal), gauss], "numpy": None}
    if rng.get("numpy") is not None:
        name, keys, pos, has_gauss, cached = rng["numpy"]
        out["numpy"] = [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]
    return out


def _rng_from_json(data: Dict[str, Any], tensors: Dict[str, Any]) -> Dict[str, Any]:
    version, internal, gauss = data["python"]
    rng: Dict[str, Any] = {"python": (version, tuple(internal), gauss), "numpy": None, **tensors}
    if data.get("numpy") is not None:
        import numpy as np
        name, keys, pos, has_gauss, cached = data["numpy"]
        rng["numpy"] = (name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached)
    return rng


def save(root: Path, snapshot: Snapshot, model: Any, optimizer: Any, scheduler: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}step-{snapshot.step}-", dir=root))
    try:
        model.save_pretrained(str(tmp / "adapter"), safe_serialization=True, save_embedding_layers=False)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save({"torch": snapshot.rng["torch"], "cuda": snapshot.rng["cuda"]}, tmp / "rng.pt")
        write_json(tmp / "state.json", {"step": snapshot.step, "epoch": snapshot.epoch,
                                        "batchIndex": snapshot.batch_index, "rng": _rng_to_json(snapshot.rng)})
        final = root / f"step-{snapshot.step}"
        if final.exists():  # the same step saved again (e.g. cancelled right after a resume): replace it
            old = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}old-", dir=root))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def complete(root: Path) -> List[Tuple[int, Path]]:
    """(step, folder) of every complete checkpoint, oldest first; temp folders are never listed."""
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = STEP_DIR.match(entry.name)
        if match and entry.is_dir() and (entry / "state.json").is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest(root: Path) -> Optional[Path]:
    found = complete(root)
    return found[-1][1] if found else None


def prune(root: Path, keep: int, protect: Optional[int] = None) -> None:
    """Remove all but the `keep` newest checkpoints, except step `protect` (the best one, kept whatever its age)."""
    for step, folder in complete(root)[:-keep]:
        if step != protect:
            shutil.rmtree(folder, ignore_errors=True)


def remove_temp(root: Path) -> None:
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith(TEMP_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)


def read_state(folder: Path) -> Dict[str, Any]:
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))


FILES = ("state.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "optimizer.pt",
         "scheduler.pt", "rng.pt")


def verify(folder: Path) -> None:
    """Read every file of a checkpoint (on the CPU) and raise CheckpointDamaged naming the first that is
    missing, truncated or corrupt, and the previous complete checkpoint to fall back to."""
    from safetensors.torch import load_file
    from .errors import CheckpointDamaged

    for name in FILES:
        path = folder / name
        try:
            if name.endswith(".json"):
                json.loads(path.read_text(encoding="utf-8"))
            elif name.endswith(".safetensors"):
                load_file(str(path), device="cpu")
            else:
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any failure to read it back: missing, truncated, garbage
            earlier = [p for s, p in complete(folder.parent) if p != folder and s < _step(folder)]
            fallback = (f"the previous complete checkpoint is {earlier[-1].name}: move {folder.name} out of "
                        f"{folder.parent} and resume again to continue from it" if earlier
                        else "there is no earlier checkpoint: start a new run")
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise CheckpointDamaged(f"checkpoint {folder.name} is damaged: {name} cannot be read ({detail}); "
                                    f"{fallback}.", file=str(path)) from None


def _step(folder: Path) -> int:
    match = STEP_DIR.match(folder.name)
    return int(match.group(1)) if match else -1


def load(folder: Path, model: Any, optimizer: Any, scheduler: Any, device: torch.device) -> Snapshot:
    """Restore adapter weights, optimizer and scheduler in place; return the snapshot to continue from."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(folder / "adapter" / "adapter_model.safetensors"), device=str(device))
    result = set_peft_model_state_dict(model, weights)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise RuntimeError(f"checkpoint {folder} does not match the model: unexpected keys {unexpected[:3]}")
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device, weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    state = read_state(folder)
    tensors = torch.load(folder / "rng.pt", weights_only=True)
    return Snapshot(step=state["step"], epoch=state["epoch"], batch_index=state["batchIndex"],
                    rng=_rng_from_json(state["rng"], tensors))
