"""The download stage (hub_pull.py) against a local server speaking the hub's file protocol (hub_server.py): which
files come, progress, resume after a dropped connection and after an interrupted pull, and each failure a user can
meet (missing, gated, unreachable, disk full) as the known error that says what to do."""
from __future__ import annotations

import errno
import hashlib
import shutil
import socket
from pathlib import Path
from typing import List

import pytest

from conftest import TINY
from hub_server import HubServer
from qlora_engine import hub_pull
from qlora_engine.errors import EngineError
from qlora_engine.protocol import BAD_INPUT_CODES, ERROR_CODES

NEEDED = ["added_tokens.json", "config.json", "generation_config.json", "merges.txt", "model.safetensors",
          "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"]
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """tiny-phi as a hub repository holds it, with files a pull must leave behind: pickled weights, a README, a
    subfolder of other weights."""
    if not (TINY / WEIGHTS).is_file():
        pytest.fail(f"{TINY} is not built: python3 samples/models/make_tiny_phi.py")
    folder = tmp_path_factory.mktemp("repo")
    for name in NEEDED:
        (folder / name).symlink_to(TINY / name)
    (folder / "README.md").write_text("# tiny\n")
    (folder / "pytorch_model.bin").write_bytes(b"\x80pickle" * 1000)
    (folder / "original").mkdir()
    (folder / "original" / "consolidated.safetensors").write_bytes(b"\0" * 4096)
    return folder


@pytest.fixture
def online(monkeypatch):
    """Downloads allowed for this test only (conftest sets HF_HUB_OFFLINE=1, which huggingface_hub read at import)."""
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def serve(model_dir: Path, **knobs) -> HubServer:
    pickled_only = model_dir.parent / "pickled-only"
    if not pickled_only.exists():
        pickled_only.mkdir()
        for name in ("config.json", "pytorch_model.bin"):
            shutil.copy(model_dir / name, pickled_only / name)
    return HubServer({"tiny/phi": model_dir, "org/gated": model_dir, "org/pickled": pickled_only},
                     gated={"org/gated"}, **knobs)


def pull(hub: HubServer, cache: Path, model: str = "tiny/phi", **kwargs):
    return hub_pull.pull(model, cache_dir=cache, endpoint=hub.url, **kwargs)


def known(exc: pytest.ExceptionInfo, name: str) -> dict:
    assert isinstance(exc.value, EngineError), exc.value
    data = exc.value.to_data()
    assert data["code"] == ERROR_CODES[name], data
    return data


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_fetches_what_training_needs_with_progress(model_dir, online, tmp_path):
    events: List[hub_pull.Progress] = []
    with serve(model_dir) as hub:
        result = pull(hub, tmp_path, report=events.append, interval=0)
        total = sum((TINY / n).stat().st_size for n in NEEDED)
        assert sorted(result["files"]) == NEEDED  # no .bin, no README, nothing from original/
        assert result["bytes"] == result["downloadedBytes"] == total
        folder = Path(result["folder"])
        assert folder == tmp_path / "models--tiny--phi" / "snapshots" / result["commit"]
        for name in NEEDED:
            assert sha(folder / name) == sha(TINY / name), name
        assert not any(p.name.endswith(".incomplete") for p in (tmp_path / "models--tiny--phi" / "blobs").iterdir())
        assert len(events) > 10 and {e.bytes_total for e in events} == {total}
        done = [e.bytes_done for e in events]
        assert done == sorted(done) and done[-1] == total
        assert events[-1].files_done == events[-1].files_total == len(NEEDED)
        assert any(e.file == WEIGHTS and 0 < e.bytes_per_second for e in events)

        # Pulled again: one listing request, no file fetched, nothing reported.
        before, again = len(hub.requests), []
        assert pull(hub, tmp_path, report=again.append)["downloadedBytes"] == 0
        assert [m for m, _, _ in hub.requests[before:]] == ["GET"] and not again

    # The layout is huggingface_hub's: it finds the files itself, and offline the same pull answers from the cache.
    from huggingface_hub import try_to_load_from_cache
    assert try_to_load_from_cache("tiny/phi", "config.json", cache_dir=tmp_path) == str(folder / "config.json")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("HF_HUB_OFFLINE", "1")
        assert pull(hub, tmp_path)["folder"] == str(folder)


def test_a_dropped_connection_resumes_where_it_stopped(model_dir, online, tmp_path):
    size = (TINY / WEIGHTS).stat().st_size
    with serve(model_dir, drop={WEIGHTS: 5_000_000}) as hub:
        result = pull(hub, tmp_path)
        assert hub.ranges(WEIGHTS) == [None, "bytes=5000000-"]
        assert hub.sent[WEIGHTS] == size  # the 5 MB before the drop were not sent again
    assert result["downloadedBytes"] == result["bytes"]
    assert sha(Path(result["folder"]) / WEIGHTS) == sha(TINY / WEIGHTS)


def test_an_interrupted_pull_goes_on_in_the_next_one(model_dir, online, tmp_path):
    import threading
    cancel = threading.Event()

    def stop_midway(p: hub_pull.Progress) -> None:
        if p.file == WEIGHTS and p.bytes_done > p.bytes_total // 2:
            cancel.set()

    size = (TINY / WEIGHTS).stat().st_size
    with serve(model_dir) as hub:
        with pytest.raises(hub_pull.Cancelled):
            pull(hub, tmp_path, report=stop_midway, interval=0, cancel=cancel)
        blobs = tmp_path / "models--tiny--phi" / "blobs"
        (partial,) = [p for p in blobs.iterdir() if p.name.endswith(".incomplete")]
        kept = partial.stat().st_size
        assert 0 < kept < size
        assert not (blobs / partial.name[:-len(".incomplete")]).exists()  # never presented as complete
        snapshot = next((tmp_path / "models--tiny--phi" / "snapshots").iterdir())
        assert not (snapshot / WEIGHTS).exists()

        events: List[hub_pull.Progress] = []
        result = pull(hub, tmp_path, report=events.append)
        assert hub.ranges(WEIGHTS)[-1] == f"bytes={kept}-"
        assert result["downloadedBytes"] == size - kept
        assert events[0].bytes_done >= result["bytes"] - (size - kept)  # the resumed pull starts where it stopped
    assert sha(snapshot / WEIGHTS) == sha(TINY / WEIGHTS)


def test_a_missing_model_or_revision_is_model_not_found(model_dir, online, tmp_path):
    with serve(model_dir) as hub:
        with pytest.raises(EngineError) as exc:
            pull(hub, tmp_path, "tiny/nope")
        data = known(exc, "ModelNotFound")
        assert "'tiny/nope' was not found on " + hub.url in data["message"] and data["field"] == "model"
        with pytest.raises(EngineError) as exc:
            pull(hub, tmp_path, revision="v9")
        assert "revision 'v9'" in known(exc, "ModelNotFound")["message"]
        with pytest.raises(EngineError) as exc:
            pull(hub, tmp_path, "org/pickled")
        assert "safetensors only" in known(exc, "ModelNotFound")["message"]
    assert not (tmp_path / "models--tiny--nope").exists()


def test_a_gated_model_says_to_accept_its_license_and_set_a_token(model_dir, online, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with serve(model_dir) as hub:
        with pytest.raises(EngineError) as exc:
            pull(hub, tmp_path, "org/gated")
    data = known(exc, "ModelGated")
    assert f"accepted its license at {hub.url}/org/gated" in data["message"]
    assert "HF_TOKEN" in data["remedy"] and "huggingface-cli login" in data["remedy"]
    assert ERROR_CODES["ModelGated"] in BAD_INPUT_CODES  # the CLI exits 2: the user has something to do


def test_an_unreachable_hub_is_named_and_a_cached_model_still_serves(model_dir, online, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(EngineError) as exc:
        hub_pull.pull("tiny/phi", cache_dir=tmp_path, endpoint=closed)
    data = known(exc, "HubUnreachable")
    assert f"cannot reach {closed}" in data["message"] and "HF_ENDPOINT" in data["remedy"]

    with serve(model_dir) as hub:
        folder = pull(hub, tmp_path)["folder"]
    assert hub_pull.pull("tiny/phi", cache_dir=tmp_path, endpoint=closed)["folder"] == folder


def test_a_full_disk_is_named_with_the_space_needed_and_the_download_resumes(model_dir, online, tmp_path,
                                                                            monkeypatch):
    written = {"bytes": 0}
    real = hub_pull._write

    def full_disk(f, chunk: bytes) -> None:
        if written["bytes"] > 8_000_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written["bytes"] += len(chunk)
        real(f, chunk)

    monkeypatch.setattr(hub_pull, "_write", full_disk)
    with serve(model_dir) as hub:
        with pytest.raises(EngineError) as exc:
            pull(hub, tmp_path)
        data = known(exc, "WriteFailed")
        assert "more needed" in data["message"] and str(tmp_path) in data["message"]
        assert "HF_HUB_CACHE" in data["remedy"]
        blobs = tmp_path / "models--tiny--phi" / "blobs"
        assert not [p for p in blobs.iterdir() if p.stat().st_size == (TINY / WEIGHTS).stat().st_size]
        assert not (next((tmp_path / "models--tiny--phi" / "snapshots").iterdir()) / WEIGHTS).exists()

        monkeypatch.setattr(hub_pull, "_write", real)
        result = pull(hub, tmp_path)
        assert hub.ranges(WEIGHTS)[-1].startswith("bytes=")  # resumed, not started over
    assert sha(Path(result["folder"]) / WEIGHTS) == sha(TINY / WEIGHTS)


def test_too_little_free_space_is_refused_before_downloading(model_dir, online, tmp_path, monkeypatch):
    monkeypatch.setattr(hub_pull.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with serve(model_dir) as hub:
        with pytest.raises(EngineError) as exc:
            pull(hub, tmp_path)
        assert not hub.ranges(WEIGHTS)
    assert "more needed, 1000 B free" in known(exc, "WriteFailed")["message"]


def test_offline_and_not_cached_says_how_to_pull(tmp_path):
    with pytest.raises(EngineError) as exc:
        hub_pull.pull("tiny/phi", cache_dir=tmp_path)
    data = known(exc, "ModelNotFound")
    assert "HF_HUB_OFFLINE=1" in data["message"] and "qlora-studio pull tiny/phi" in data["message"]


def test_a_generate_cancelled_while_its_model_downloads_keeps_the_bytes_and_the_next_one_resumes(model_dir, ws,
                                                                                                tmp_path):
    """The engine process, as the server drives it: a generate whose hub model is not cached downloads it
    (model/didProgress), `$/cancelRequest` stops the download within a chunk (RequestCancelled, the partial file
    kept), and the next generate resumes it with a Range request and generates."""
    from rpc_client import EngineProcess
    size = (TINY / WEIGHTS).stat().st_size
    cache = tmp_path / "cache"
    with serve(model_dir, throttle=0.02) as hub:  # ~9 s for the weights: the cancel lands mid-file
        engine = EngineProcess({"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "0",
                                "TRANSFORMERS_OFFLINE": "0"})
        try:
            assert "result" in engine.request("initialize", {"clientName": "pytest"})
            params = {"config": ws.config(model="tiny/phi"), "adapter": None, "records": [{"dialogue": "A: Hi."}],
                      "maxNewTokens": 3, "temperature": 0, "topP": 1.0, "seed": 0, "batchSize": 1}
            engine.send({"jsonrpc": "2.0", "id": "g1", "method": "generate", "params": params})
            engine.notification("model/didProgress", lambda p: p.get("download", {}).get("file") == WEIGHTS
                                and p["download"]["bytesDone"] > 0, timeout=60)
            engine.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "g1"}})
            reply = engine._wait(lambda m: m.get("id") == "g1", 30)
            assert reply["error"]["code"] == ERROR_CODES["RequestCancelled"], reply
            assert "'tiny/phi'" in reply["error"]["message"] and "resumes" in reply["error"]["message"]
            (partial,) = (cache / "models--tiny--phi" / "blobs").glob("*.incomplete")
            kept = partial.stat().st_size
            assert 0 < kept < size

            hub.throttle = 0
            again = engine.request("generate", params, timeout=120)
            assert len(again["result"]["completions"]) == 1, again
            assert hub.ranges(WEIGHTS)[-1] == f"bytes={kept}-"
            assert engine.request("shutdown")["result"] is None
        finally:
            engine.close()


def test_a_run_cancelled_while_its_model_downloads_ends_cancelled_and_the_next_run_resumes(model_dir, ws, tmp_path):
    """train/cancel in the `downloading` stage: the run ends `cancelled` within a chunk, the partial file kept, and the
    next run's download goes on from it."""
    from rpc_client import EngineProcess
    size = (TINY / WEIGHTS).stat().st_size
    cache = tmp_path / "cache"
    config = ws.config(model="tiny/phi", train={"max_steps": 1})
    with serve(model_dir, throttle=0.02) as hub:
        engine = EngineProcess({"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "0",
                                "TRANSFORMERS_OFFLINE": "0"})
        try:
            assert "result" in engine.request("initialize", {"clientName": "pytest"})
            first = engine.request("train/start", {"runDir": str(ws.runs / "first"), "config": config,
                                                   "resume": False})["result"]
            engine.notification("train/didStage", lambda p: p["stage"] == "downloading"
                                and p["download"]["file"] == WEIGHTS and p["download"]["bytesDone"] > 0, timeout=60)
            assert engine.request("train/cancel", {"runId": first["runId"]})["result"] == {"cancelling": True}
            end = engine.notification("train/didEnd", lambda p: p["runId"] == first["runId"], timeout=30)
            assert end["status"] == "cancelled" and end["error"] is None, end
            (partial,) = (cache / "models--tiny--phi" / "blobs").glob("*.incomplete")
            kept = partial.stat().st_size
            assert 0 < kept < size

            hub.throttle = 0
            second = engine.request("train/start", {"runDir": str(ws.runs / "second"), "config": config,
                                                    "resume": False})["result"]
            end = engine.notification("train/didEnd", lambda p: p["runId"] == second["runId"], timeout=120)
            assert end["status"] == "completed", end
            assert hub.ranges(WEIGHTS)[-1] == f"bytes={kept}-"
        finally:
            engine.close()
