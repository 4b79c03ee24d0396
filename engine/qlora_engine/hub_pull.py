"""`model/pull` and the `downloading` stage: a hub model's files fetched into the Hugging Face cache, resumably.

Which files: what transformers needs to load the model for training — config, generation config, tokenizer files,
chat template, remote code (*.py, for trust_remote_code) — and the safetensors weights (the shards the index names,
else model.safetensors). Never pickled weights (*.bin, *.pt: the engine loads safetensors only), nothing in a
subfolder (Llama's original/, onnx/, ...).

Why not huggingface_hub's snapshot_download: it (2.4 here) downloads each file to a temporary name unique to the
process and deletes it when the download fails, so an interrupted 5 GB download starts over. Here a blob is fetched
into `blobs/<etag>.incomplete` (the name huggingface_hub used to use) and an interrupted download goes on from that
file's size with an HTTP Range request, in the same process after a dropped connection and in the next one after a
crash or Ctrl-C. The cache layout is huggingface_hub's (blobs/, snapshots/<commit>/ links, refs/<revision>), so
transformers, `huggingface-cli` and HF_HUB_OFFLINE=1 find the files as their own. A blob gets its final name only at
its full size: a half-written file is never taken for a complete one.

The hub is HF_ENDPOINT and the cache HF_HUB_CACHE (HF_HOME/hub), both as huggingface_hub reads them; a token comes
from HF_TOKEN or `huggingface-cli login`.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import re
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from .errors import Busy, DownloadWriteFailed, EngineError, HubUnreachable, ModelNotFound, hub_failure
from .files import write_text
from .locks import Lock

log = logging.getLogger(__name__)

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
_NEEDED = (".json", ".txt", ".model", ".jinja", ".tiktoken", ".py")  # config, tokenizer, chat template, code
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
RETRIES = 5  # attempts in a row that bring no byte before a file's download gives up


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def is_hub_id(name: str) -> bool:
    """A `model:` that names a hub repository rather than a folder."""
    return not (os.path.isabs(name) or name.startswith(("./", "../", "~")))


@dataclasses.dataclass
class Progress:
    """DownloadProgress of protocol/engine.ts."""
    model: str
    file: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    bytes_per_second: float = 0.0
    files_done: int = 0
    files_total: int = 0

    def to_wire(self) -> Dict[str, Any]:
        return {"model": self.model, "file": self.file, "bytesDone": self.bytes_done, "bytesTotal": self.bytes_total,
                "bytesPerSecond": round(self.bytes_per_second, 1), "filesDone": self.files_done,
                "filesTotal": self.files_total}


Report = Callable[[Progress], None]


class Cancelled(Exception):
    """The caller's cancel flag was set during a download; the partial file stays for the next attempt."""


class _Meter:
    """Bytes so far, the speed over the last few seconds, and a report at most every `interval` seconds."""

    WINDOW = 3.0

    def __init__(self, progress: Progress, report: Optional[Report], interval: float,
                 cancel: Optional[threading.Event]) -> None:
        self.p, self.report, self.interval, self.cancel = progress, report, interval, cancel
        self.fetched = 0  # bytes received by this pull (what the speed measures)
        self._samples: Deque[Tuple[float, int]] = deque([(time.monotonic(), 0)])
        self._last = -math.inf

    def add(self, n: int) -> None:
        self.p.bytes_done += n
        self.fetched += n
        now = time.monotonic()
        self._samples.append((now, self.fetched))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.WINDOW:
            self._samples.popleft()
        start, before = self._samples[0]
        if now > start:
            self.p.bytes_per_second = (self.fetched - before) / (now - start)
        self.emit()
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def rewind(self, n: int) -> None:
        """Bytes counted as done that are gone (a partial file the server would not resume)."""
        self.p.bytes_done -= n

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.report is not None and (force or now - self._last >= self.interval):
            self._last = now
            self.report(dataclasses.replace(self.p))


def _write(f: Any, chunk: bytes) -> None:
    f.write(chunk)


def _folder_name(model: str) -> str:
    return "models--" + model.replace("/", "--")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return ""  # unreachable


def pull(model: str, revision: Optional[str] = None, *, weights: bool = True, report: Optional[Report] = None,
         interval: float = 0.25, cancel: Optional[threading.Event] = None, cache_dir: "str | Path | None" = None,
         endpoint: Optional[str] = None, token: Optional[str] = None) -> Dict[str, Any]:
    """The model's files in the cache, fetching what is missing; ModelPullResult of protocol/engine.ts.

    weights=False fetches everything but the weights (what config and tokenizer checks need). `report` gets the
    bytes as they arrive (at most every `interval` seconds, and once at the end); it is never called when nothing
    had to be fetched. Known failures raise EngineError: ModelNotFound (HubModelNotFound), ModelGated,
    HubUnreachable, DownloadWriteFailed; `cancel` raises Cancelled.
    """
    from huggingface_hub import constants
    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    hub = (endpoint or constants.ENDPOINT).rstrip("/")
    rev = revision or constants.DEFAULT_REVISION
    if not is_hub_id(model) or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model):
        raise ModelNotFound(f"{model!r} is not a hub id (owner/name, as on the model's page).", field="model")
    storage = cache / _folder_name(model)
    if offline():
        return from_cache(model, rev, storage, weights, "HF_HUB_OFFLINE=1 forbids downloading it")
    try:
        commit, listed = _listing(model, rev, hub, token)
    except HubUnreachable as exc:  # no network: a model pulled before still serves
        try:
            found = from_cache(model, rev, storage, weights, "the hub cannot be reached")
        except ModelNotFound:
            raise exc from None
        log.warning("%s; using %s from the cache", exc.message, model)
        return found
    lock = _lock(cache / ".locks" / _folder_name(model) / "qlora-studio.lock", model, cancel)
    try:
        fetch = _Fetcher(model, rev, commit, hub, token, storage, cancel)
        return fetch.all(listed, weights, report, interval)
    finally:
        lock.release()


def from_cache(model: str, rev: str, storage: Path, weights: bool, why: str) -> Dict[str, Any]:
    """The result of a pull that fetches nothing: the snapshot in the cache, complete, or ModelNotFound."""
    ref = storage / "refs" / rev
    commit = rev if _COMMIT.fullmatch(rev) else (ref.read_text(encoding="utf-8").strip() if ref.is_file() else "")
    folder = storage / "snapshots" / commit
    if not commit or not (folder / "config.json").is_file():
        raise ModelNotFound(f"model {model!r} is not in the local Hugging Face cache ({storage.parent}) and {why}. "
                            f"Run `qlora-studio pull {model}` where there is network, or set `model` to a local "
                            "folder.", field="model")
    missing = _missing_weights(folder) if weights else []
    if missing:
        raise ModelNotFound(f"model {model!r} is only partly in the cache ({folder}: {', '.join(missing[:3])} "
                            f"missing) and {why}. Run `qlora-studio pull {model}` where there is network to finish "
                            "the download.", field="model")
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name[0] != "."}
    return {"model": model, "revision": rev, "commit": commit, "folder": str(folder), "files": files,
            "bytes": sum(files.values()), "downloadedBytes": 0}


def _missing_weights(folder: Path) -> List[str]:
    if (folder / INDEX).is_file():
        shards = sorted(set(json.loads((folder / INDEX).read_text(encoding="utf-8"))["weight_map"].values()))
        return [s for s in shards if not (folder / s).is_file()]
    return [] if any(folder.glob("*.safetensors")) else [SINGLE]


def _listing(model: str, rev: str, hub: str, token: Optional[str]) -> Tuple[str, Dict[str, int]]:
    """The commit `rev` is at and every file of the repository with its size."""
    from huggingface_hub import HfApi
    try:
        info = HfApi(endpoint=hub, token=token).model_info(model, revision=rev, files_metadata=True)
    except Exception as exc:
        raise hub_failure(exc, model, rev, hub) from None
    if not info.sha:
        raise HubUnreachable(f"{hub} does not answer as a Hugging Face hub (no commit for {model!r}).")
    return info.sha, {s.rfilename: int(s.size or 0) for s in info.siblings or []}


def _lock(path: Path, model: str, cancel: Optional[threading.Event]) -> Lock:
    """One download of a model at a time (another process's, a distributed run's other ranks): wait for it."""
    waited = False
    while True:
        try:
            return Lock(path, f"downloading {model}", "{holder}")
        except Busy as exc:
            if not waited:
                log.info("%s is being downloaded by another process (%s); waiting for it", model, exc.message)
                waited = True
            if cancel is not None and cancel.wait(0.5):
                raise Cancelled() from None
            if cancel is None:
                time.sleep(0.5)


class _Fetcher:
    """One pull's files at one commit: which ones, where they go, and the bytes."""

    def __init__(self, model: str, rev: str, commit: str, hub: str, token: Optional[str], storage: Path,
                 cancel: Optional[threading.Event]) -> None:
        from huggingface_hub.utils import build_hf_headers
        self.model, self.rev, self.commit, self.hub, self.token = model, rev, commit, hub, token
        self.storage, self.cancel = storage, cancel
        self.snapshot = storage / "snapshots" / commit
        self.headers = build_hf_headers(token=token)
        self.meter = _Meter(Progress(model), None, 0, cancel)

    def all(self, listed: Dict[str, int], weights: bool, report: Optional[Report], interval: float) -> Dict[str, Any]:
        top = [name for name in listed if "/" not in name]
        names = sorted(n for n in top if n.endswith(_NEEDED) and not n.endswith(".bin.index.json"))
        if "config.json" not in names:
            raise ModelNotFound(f"{self.model!r} on {self.hub} has no config.json, so it is not a transformers "
                                "model.", field="model")
        if weights:
            if INDEX in listed:
                self._fetch({INDEX: self._head(INDEX)})  # which shards to fetch is written in it
            names += self._weights(top)
        plan = {name: self._head(name) for name in names if not (self.snapshot / name).is_file()}
        files = {name: (plan[name][2] if name in plan else (self.snapshot / name).stat().st_size) for name in names}
        p = self.meter.p
        p.bytes_total, p.files_total = sum(files.values()), len(files)
        p.files_done = len(files) - len(plan)
        p.bytes_done = p.bytes_total - sum(size for _, _, size in plan.values())
        for etag, _, _ in plan.values():
            partial = self.storage / "blobs" / f"{etag}.incomplete"
            p.bytes_done += partial.stat().st_size if partial.is_file() else 0
        if plan:
            self._check_space(p.bytes_total - p.bytes_done)  # partial files are on disk already
            self.meter.report, self.meter.interval = report, interval
            self._fetch(plan)
            self.meter.emit(force=True)
        if self.rev != self.commit:
            write_text(self.storage / "refs" / self.rev, self.commit)
        return {"model": self.model, "revision": self.rev, "commit": self.commit, "folder": str(self.snapshot),
                "files": files, "bytes": p.bytes_total, "downloadedBytes": self.meter.fetched}

    def _weights(self, top: List[str]) -> List[str]:
        if INDEX in top:
            index = json.loads((self.snapshot / INDEX).read_text(encoding="utf-8"))
            return sorted(set(index.get("weight_map", {}).values()))
        if SINGLE in top:
            return [SINGLE]
        found = sorted(n for n in top if n.endswith(".safetensors"))
        if not found:
            pickled = [n for n in top if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
            raise ModelNotFound(f"{self.model!r} has no safetensors weights on {self.hub}"
                                + (f" (only {', '.join(pickled[:3])})" if pickled else "")
                                + "; the engine loads safetensors only. Choose a model (or a revision) that ships "
                                "*.safetensors.", field="model")
        return found

    def _head(self, name: str) -> Tuple[str, str, int]:
        """(etag, download url, size) of one file at the commit, from the hub's HEAD answer."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        try:
            meta = get_hf_file_metadata(hf_hub_url(self.model, name, revision=self.commit, endpoint=self.hub),
                                        token=self.token, endpoint=self.hub)
        except Exception as exc:
            raise hub_failure(exc, self.model, self.rev, self.hub, name) from None
        if not meta.etag:
            raise HubUnreachable(f"{self.hub} sent no ETag for {name} of {self.model!r}; it does not answer as a "
                                 "Hugging Face hub.")
        return meta.etag, meta.location, int(meta.size or 0)

    def _check_space(self, needed: int) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.storage).free
        if needed > free:
            raise self._disk_full(needed, free)

    def _disk_full(self, needed: int, free: int) -> EngineError:
        return DownloadWriteFailed(f"not enough disk space to download {self.model!r}: {_size(needed)} more needed, "
                                   f"{_size(free)} free in the Hugging Face cache {self.storage.parent} "
                                   "(HF_HUB_CACHE). What was downloaded is kept and the download resumes from it.",
                                   file=str(self.storage.parent))

    def _fetch(self, plan: Dict[str, Tuple[str, str, int]]) -> None:
        for name, (etag, url, size) in plan.items():
            self.meter.p.file = name
            blob = self.storage / "blobs" / etag
            if not blob.is_file():
                try:
                    self._download(name, url, blob, size)
                except (Cancelled, EngineError):
                    raise
                except OSError as exc:
                    mapped = hub_failure(exc, self.model, self.rev, self.hub, name)  # HfHubHTTPError is an OSError
                    raise (mapped if mapped is not exc else self._write_failed(exc, blob, size)) from None
                except Exception as exc:
                    raise hub_failure(exc, self.model, self.rev, self.hub, name) from None
            _link(blob, self.snapshot / name)
            self.meter.p.files_done += 1

    def _write_failed(self, exc: OSError, blob: Path, size: int) -> EngineError:
        partial = blob.with_name(blob.name + ".incomplete")
        have = partial.stat().st_size if partial.is_file() else 0
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            p = self.meter.p
            return self._disk_full(p.bytes_total - p.bytes_done, shutil.disk_usage(self.storage).free)
        return DownloadWriteFailed(f"could not write {partial} ({_size(have)} of {_size(size)} downloaded): "
                                   f"{exc.strerror or exc}.", file=str(partial))

    def _download(self, name: str, url: str, blob: Path, size: int) -> None:
        import httpx2
        from huggingface_hub import constants
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import get_session, hf_raise_for_status
        partial = blob.with_name(blob.name + ".incomplete")
        partial.parent.mkdir(parents=True, exist_ok=True)
        headers = {**self.headers, "Accept-Encoding": "identity"}  # a Range counts bytes of the file itself
        cdn = urlsplit(url).netloc != urlsplit(self.hub).netloc
        if cdn:  # a CDN's signed URL: the token stays with the hub
            headers.pop("authorization", None)
        idle, renewed = 0, False
        while True:
            have = partial.stat().st_size if partial.is_file() else 0
            if have > size:  # not this file's bytes (its etag is its content's hash, so never a shorter version)
                partial.unlink()
                self.meter.rewind(have)
                have = 0
            if have == size:
                break
            got = 0
            try:
                ranged = {**headers, "Range": f"bytes={have}-"} if have else headers
                with get_session().stream("GET", url, headers=ranged, follow_redirects=True,
                                          timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
                    hf_raise_for_status(response)
                    if have and response.status_code != 206:  # the server sends the whole file again
                        self.meter.rewind(have)
                        have = 0
                    with open(partial, "ab" if have else "wb") as f:
                        for chunk in response.iter_bytes():  # as received: a dropped connection loses none
                            _write(f, chunk)
                            got += len(chunk)
                            self.meter.add(len(chunk))
                if have + got >= size:
                    continue
                reason = f"the answer ended after {_size(have + got)} of {_size(size)}"
            except httpx2.TransportError as exc:  # dropped or stalled: go on from what arrived
                reason = f"{type(exc).__name__}: {exc}"
            except HfHubHTTPError as exc:  # a CDN's signed URL expires (within hours): the hub gives a new one
                if not cdn or renewed or exc.response is None or exc.response.status_code not in (401, 403):
                    raise
                url, renewed = self._head(name)[1], True
                continue
            idle = 0 if got else idle + 1
            if idle >= RETRIES:
                raise HubUnreachable(f"the download of {name} ({self.model!r}) from {self.hub} stopped at "
                                     f"{_size(have + got)} of {_size(size)} and {RETRIES} attempts to resume it "
                                     f"brought nothing ({reason}). The partial file is kept.")
            log.warning("download of %s interrupted at %d of %d bytes (%s); resuming", name, have + got, size, reason)
            time.sleep(min(0.25 * 2 ** idle, 4.0))
        os.replace(partial, blob)


def _link(blob: Path, pointer: Path) -> None:
    """snapshots/<commit>/<file> -> ../../blobs/<etag>, as huggingface_hub links them (a copy without symlinks)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), tmp)
    except OSError:  # no symlinks (Windows without developer mode)
        shutil.copyfile(blob, tmp)
    os.replace(tmp, pointer)
