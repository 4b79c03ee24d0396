"""Known failures as values: each becomes a JSON-RPC error whose data says where the problem is.

Messages are written for the person who has to fix it: what is wrong, where, and what to do.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from .protocol import ERROR_CODES


class EngineError(Exception):
    """A failure the user can act on. `to_data()` is EngineErrorData of protocol/engine.ts."""

    def __init__(self, code: int, message: str, *, file: Optional[str] = None, line: Optional[int] = None,
                 field: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field

    def to_data(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"code": self.code, "message": self.message}
        if self.file is not None:
            data["file"] = self.file
        if self.line is not None:
            data["line"] = self.line
        if self.field is not None:
            data["field"] = self.field
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_data()!r})"


class _Known(EngineError):
    """A known failure whose code is fixed by its class (so call sites read `raise BadDataset(...)`)."""

    CODE = ERROR_CODES["InternalError"]

    def __init__(self, message: str, *, file: Optional[str] = None, line: Optional[int] = None,
                 field: Optional[str] = None) -> None:
        super().__init__(self.CODE, message, file=file, line=line, field=field)


class InvalidParams(_Known):
    CODE = ERROR_CODES["InvalidParams"]


class OutOfMemory(_Known):
    CODE = ERROR_CODES["OutOfMemory"]


class BitsAndBytesMissing(_Known):
    CODE = ERROR_CODES["BitsAndBytesMissing"]


class ModelNotFound(_Known):
    CODE = ERROR_CODES["ModelNotFound"]


class BadDataset(_Known):
    CODE = ERROR_CODES["BadDataset"]


class BadConfig(_Known):
    CODE = ERROR_CODES["BadConfig"]


class BadTemplate(_Known):
    CODE = ERROR_CODES["BadTemplate"]


class CudaUnavailable(_Known):
    CODE = ERROR_CODES["CudaUnavailable"]


class RunNotFound(_Known):
    CODE = ERROR_CODES["RunNotFound"]


class Busy(_Known):
    CODE = ERROR_CODES["Busy"]


class CheckpointNotFound(_Known):
    CODE = ERROR_CODES["CheckpointNotFound"]


class TrainingDiverged(_Known):
    CODE = ERROR_CODES["TrainingDiverged"]


class WriteFailed(_Known):
    CODE = ERROR_CODES["WriteFailed"]


class CheckpointDamaged(_Known):
    CODE = ERROR_CODES["CheckpointDamaged"]


def out_of_memory(detail: str = "") -> EngineError:
    return OutOfMemory(
        "The GPU ran out of memory"
        + (f" ({detail.splitlines()[0]}{detail[detail.index('; ran with'):] if '; ran with' in detail else ''})"
           if detail else "")
        + ". Lower train.tokens_per_pass, train.micro_batch_size or max_length, set train.gradient_checkpointing: "
          "true, or use quantization: nf4 (train/plan estimates the peak before you start).")


def write_failed(exc: OSError, run_dir: Any) -> EngineError:
    """An OSError while the run wrote its folder (metrics, run.json, the adapter): what and where."""
    where = exc.filename or run_dir
    return WriteFailed(f"could not write {where}: {exc.strerror or exc}. Files written before are intact (every file "
                       "is written to a temporary name first); free space or fix permissions, then resume.",
                       file=str(where))


def cuda_unavailable(what: str = "4-bit/8-bit") -> EngineError:
    return CudaUnavailable(
        f"{what} needs an NVIDIA GPU with CUDA, and torch sees none; set quantization: none to train on CPU "
        "(slow, fine for tiny models).", field="quantization")


def bitsandbytes_missing(error: str) -> EngineError:
    return BitsAndBytesMissing(
        f"bitsandbytes could not be imported ({error}). Install it in the engine's Python environment "
        "(pip install 'bitsandbytes>=0.43'), or set quantization: none and train.optimizer: adamw_torch.",
        field="quantization")


class BadModelFile(_Known):
    CODE = ERROR_CODES["BadModelFile"]
