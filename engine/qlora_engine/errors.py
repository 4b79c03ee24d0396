"""Known failures as values: each becomes a JSON-RPC error whose data says where the problem is.

Messages are written for the person who has to fix it: what is wrong and where (specific to this failure); each
class's REMEDY says what to do about its kind of failure, in one sentence. Both travel in the error's data; the
editor shows the remedy as the problem's fix and the CLI prints it under the message. This module is the one home
of those texts.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from .protocol import ERROR_CODES


class EngineError(Exception):
    """A failure the user can act on. `to_data()` is EngineErrorData of protocol/engine.ts."""

    REMEDY: Optional[str] = None

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
        if self.REMEDY is not None:
            data["remedy"] = self.REMEDY
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
    REMEDY = ('Lower train.tokens_per_pass, train.micro_batch_size or max_length, turn on '
              'train.gradient_checkpointing, or use quantization: nf4 (qlora-studio plan estimates the peak before '
              'you start).')


class BitsAndBytesMissing(_Known):
    CODE = ERROR_CODES["BitsAndBytesMissing"]
    REMEDY = ('Install bitsandbytes in the engine environment (Set Up Engine Environment), or set quantization: '
              'none to train on the CPU.')


class ModelNotFound(_Known):
    CODE = ERROR_CODES["ModelNotFound"]
    REMEDY = ('Set `model` to a local model folder, or allow downloads (unset HF_HUB_OFFLINE) so the hub id can be '
              'fetched.')


class BadDataset(_Known):
    CODE = ERROR_CODES["BadDataset"]
    REMEDY = 'Fix the JSONL record named here (the Problems panel lists dataset problems), then start again.'


class BadConfig(_Known):
    CODE = ERROR_CODES["BadConfig"]
    REMEDY = 'Fix the config field named here, then start again.'


class BadTemplate(_Known):
    CODE = ERROR_CODES["BadTemplate"]
    REMEDY = 'Fix the prompt template (the Problems panel shows where), then start again.'


class CudaUnavailable(_Known):
    CODE = ERROR_CODES["CudaUnavailable"]
    REMEDY = ('No CUDA GPU is visible to the engine: use a config with quantization: none (e.g. '
              'samples/dialogsum/smollm2.yaml) to train on the CPU, or install a CUDA build of torch.')


class RunNotFound(_Known):
    CODE = ERROR_CODES["RunNotFound"]
    REMEDY = 'Check the run folder path (`qlora-studio runs` lists the runs of a folder).'


class Busy(_Known):
    CODE = ERROR_CODES["Busy"]
    REMEDY = 'The engine is busy with another job; wait for it to end or cancel it.'


class CheckpointNotFound(_Known):
    CODE = ERROR_CODES["CheckpointNotFound"]
    REMEDY = 'This run has no checkpoint to resume from; start a new run instead.'


class TrainingDiverged(_Known):
    CODE = ERROR_CODES["TrainingDiverged"]
    REMEDY = ('Lower train.learning_rate (or raise warmup_steps); with compute_dtype float16, use bfloat16 if the '
              'GPU has it. Resume continues from the last checkpoint.')


class WriteFailed(_Known):
    CODE = ERROR_CODES["WriteFailed"]
    REMEDY = "Free disk space (or fix the folder's permissions), then resume: the last complete checkpoint is intact."


class CheckpointDamaged(_Known):
    CODE = ERROR_CODES["CheckpointDamaged"]
    REMEDY = ('Move the damaged checkpoint folder named here out of checkpoints/ and resume again: the run '
              'continues from the previous one.')


def out_of_memory(detail: str = "") -> EngineError:
    return OutOfMemory(
        "The GPU ran out of memory"
        + (f" ({detail.splitlines()[0]}{detail[detail.index('; ran with'):] if '; ran with' in detail else ''})"
           if detail else "") + ".")


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
    REMEDY = ('Use a complete .gguf file (compare its size or SHA-256 with the source) of a supported architecture;'
              ' a quantization type named here cannot be dequantized by the installed gguf package.')


class HubUnreachable(_Known):
    CODE = ERROR_CODES["HubUnreachable"]
    REMEDY = ('Check the network connection (and HF_ENDPOINT or proxy settings), then run again: the download resumes '
              'where it stopped. HF_HUB_OFFLINE=1 uses only models already in the cache.')


class ModelGated(_Known):
    CODE = ERROR_CODES["ModelGated"]
    REMEDY = ("Accept the model's license on its hub page with your account, then give the engine a token: set "
              "HF_TOKEN (a read token from huggingface.co/settings/tokens) or run `huggingface-cli login`.")


class DownloadWriteFailed(WriteFailed):
    """A model download that could not be written into the cache: same code as WriteFailed, its own remedy."""
    REMEDY = ('Free disk space where the Hugging Face cache is (or set HF_HUB_CACHE to a folder on a bigger disk), '
              'then run again: the download resumes where it stopped.')


class RequestCancelled(_Known):
    """A request stopped by `$/cancelRequest` (a model download: what arrived stays for the next request)."""
    CODE = ERROR_CODES["RequestCancelled"]
    REMEDY = "Start it again when you are ready: a model download goes on from the bytes it already has."


def download_cancelled(model: str) -> EngineError:
    return RequestCancelled(f"cancelled while downloading {model!r}; the files that arrived are kept in the Hugging "
                            "Face cache, and the next download resumes from them.", field="model")


class HubModelNotFound(ModelNotFound):
    """A hub id the hub does not know (or will not show without a token): same code as ModelNotFound."""
    REMEDY = ("Check the id on the model's hub page (owner/name) and the revision; a private model needs HF_TOKEN set "
              "to a token with access to it.")


def hub_failure(exc: BaseException, model: str, rev: str, hub: str, file: Optional[str] = None) -> BaseException:
    """A huggingface_hub / HTTP failure as the known failure it is, with a message naming the model and the hub."""
    import httpx2
    from huggingface_hub import errors as hf
    from huggingface_hub import get_token
    if isinstance(exc, EngineError):
        return exc
    what = f"{file} of {model!r}" if file else repr(model)
    if isinstance(exc, hf.GatedRepoError):
        sent = "no token is set" if get_token() is None else "the token in use has no access to it"
        return ModelGated(f"{what} is gated: its files are shared only with accounts that accepted its license at "
                          f"{hub}/{model}, and {sent}.", field="model")
    if isinstance(exc, hf.RevisionNotFoundError):
        return HubModelNotFound(f"revision {rev!r} of {model!r} was not found on {hub}.", field="model")
    if isinstance(exc, hf.RepositoryNotFoundError):  # 404, or 401 for a private one without access
        return HubModelNotFound(f"{model!r} was not found on {hub}.", field="model")
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return HubModelNotFound(f"{what} is listed by {hub} but not served (404).", field="model")
    if isinstance(exc, hf.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return ModelGated(f"{hub} refused {what} ({status}): the token is missing, invalid or has no access.",
                              field="model")
        return HubUnreachable(f"{hub} failed to serve {what} (HTTP {status}).")
    if isinstance(exc, hf.FileMetadataError):
        return HubUnreachable(f"{hub} does not answer as a Hugging Face hub for {what}: {str(exc).splitlines()[0]}")
    if isinstance(exc, (httpx2.RequestError, hf.OfflineModeIsEnabled)):
        return HubUnreachable(f"cannot reach {hub} to download {what}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'no answer'}.")
    if isinstance(exc, hf.HFValidationError):
        return ModelNotFound(f"{model!r} is not a hub id: {str(exc).splitlines()[0]}", field="model")
    return exc
