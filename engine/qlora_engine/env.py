"""The environment report (EnvReport of protocol/engine.ts): what the engine can use on this machine.

Every probe is guarded: a missing or broken package is reported (with its import error), never raised, so
`initialize` always answers and the editor can tell the user what to install.
"""
from __future__ import annotations

import importlib
import platform
import sys
from typing import Any, Dict, List, Optional


def package_info(name: str) -> Dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # ImportError, but also RuntimeErrors from broken native libraries
        return {"available": False, "version": _dist_version(name), "error": f"{type(exc).__name__}: {exc}"}
    return {"available": True, "version": getattr(module, "__version__", None) or _dist_version(name),
            "error": None}


def _dist_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def process_free(index: int, free: int, total: int) -> int:
    """Free memory this process may still allocate: the device's free memory, lowered by a per-process cap
    (torch.cuda.set_per_process_memory_fraction) when one is set."""
    import torch
    get = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    fraction = get(index) if get is not None else 1.0
    if fraction < 1.0:
        free = min(free, int(fraction * total) - torch.cuda.memory_reserved(index))
    return max(0, int(free))


def gpu_devices() -> List[Dict[str, Any]]:
    """GpuInfo for every visible CUDA device; [] without torch or CUDA."""
    try:
        import torch
        if not torch.cuda.is_available():
            return []
        devices = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            free = process_free(index, free, total)
            major, minor = torch.cuda.get_device_capability(index)
            devices.append({
                "index": index,
                "name": props.name,
                "totalMemory": int(total),
                "freeMemory": int(free),
                "capability": [major, minor],
                # bf16 needs Ampere (8.0) or newer; is_bf16_supported() answers for the current device only.
                "bf16": major >= 8,
            })
        return devices
    except Exception:
        return []


def nvidia_driver() -> Optional[str]:
    """The NVIDIA driver version (nvidia-smi), or None without a driver: with torch's CUDA version it tells a CPU
    build on a GPU machine, or a build newer than the driver runs (scripts/torch-build.mjs decides)."""
    import subprocess
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else ""
    return first if first.replace(".", "").isdigit() else None


def env_report() -> Dict[str, Any]:
    torch_info = package_info("torch")
    cuda_version = None
    mps = False
    if torch_info["available"]:
        import torch
        cuda_version = torch.version.cuda
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    devices = gpu_devices()
    return {
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": platform.platform(),
        "torch": {**torch_info, "cuda": cuda_version, "mps": mps},
        "transformers": package_info("transformers"),
        "peft": package_info("peft"),
        "accelerate": package_info("accelerate"),
        "bitsandbytes": package_info("bitsandbytes"),
        "cuda": {"available": bool(devices), "devices": devices},
        "nvidia": {"driver": nvidia_driver()},
    }
