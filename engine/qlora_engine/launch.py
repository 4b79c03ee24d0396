"""train.devices > 1: the run as N processes started by torchrun (`python -m torch.distributed.run --standalone`),
supervised by the engine that received train/start.

    run = LaunchedRun(config, run_dir, devices=2, resume=False, events=events, cancel=cancel)
    summary = run.validate()   # in this process, as Recipe.validate: bad input raises, nothing is written
    end = run.run()            # torchrun -> N x `python -m qlora_engine.worker`; returns TrainDidEndParams

Rank 0 (worker.py) sends the run's events here over a localhost socket and they go on to `events` as if this
process trained; a cancel goes back the same way and every rank stops at the next step with a checkpoint. torchrun
stops the other ranks when one fails; the run then ends "failed" naming the rank, its exit and the last lines of its
log (<run-dir>/workers/rank-N.log), and run.json says so even when rank 0 was the one that died. A resume works as
on one process (the checkpoint holds the one adapter all ranks share).
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional

from . import checkpoint
from .errors import EngineError
from .events import Events, NullEvents
from .files import write_json
from .locks import run_folder_lock
from .protocol import ERROR_CODES, RUN_FOLDER
from .recipe import Recipe, _now
from .worker import log_path

log = logging.getLogger(__name__)
ENGINE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the qlora_engine package


def devices_for(raw_config: Any) -> int:
    """train.devices as a count: "auto" is every visible GPU (1 without CUDA)."""
    from .config import parse_config
    devices = parse_config(raw_config).train.devices
    if devices == "auto":
        import torch
        return max(1, torch.cuda.device_count())
    return int(devices)


class LaunchedRun:
    def __init__(self, config: Dict[str, Any], run_dir: "str | Path", *, devices: int, resume: bool = False,
                 events: Optional[Events] = None, cancel: Optional[threading.Event] = None) -> None:
        self.raw_config = config
        self.devices = devices
        self.resume = resume
        self.events = events or NullEvents()
        self.cancel = cancel or threading.Event()
        self._local = Recipe(config, run_dir, resume=resume)  # validates here; trains nowhere
        self.run_id = self._local.run_id
        self.run_dir = self._local.run_dir
        self.total_steps = self.start_step = 0

    def validate(self) -> Dict[str, int]:
        summary = self._local.validate()
        self.total_steps, self.start_step = self._local.total_steps, self._local.start_step
        self._check_devices()
        return summary

    def _check_devices(self) -> None:
        import torch
        if torch.cuda.is_available() and torch.cuda.device_count() < self.devices:
            from .errors import BadConfig
            raise BadConfig(f"train.devices is {self.devices}, but this machine has {torch.cuda.device_count()} "
                            "GPU(s) visible (CUDA_VISIBLE_DEVICES).", field="train.devices")

    def run(self) -> Dict[str, Any]:
        server = socket.create_server(("127.0.0.1", 0))
        spec_dir = Path(tempfile.mkdtemp(prefix="qlora-launch-"))
        spec = spec_dir / "spec.json"
        spec.write_text(json.dumps({"config": self.raw_config, "runDir": str(self.run_dir), "resume": self.resume,
                                    "port": server.getsockname()[1]}), encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ENGINE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.devices)))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                   "--nproc-per-node", str(self.devices), "--max-restarts", "0", "-m", "qlora_engine.worker",
                   str(spec)]
        log.info("launching %d processes: %s", self.devices, " ".join(command))
        self.events.stage("loading-model", f"Starting {self.devices} training processes (torchrun)")
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        output: Deque[str] = deque(maxlen=200)
        relay = threading.Thread(target=self._relay_output, args=(process, output), daemon=True)
        relay.start()
        ends: List[Dict[str, Any]] = []
        listener = threading.Thread(target=self._serve_rank0, args=(server, process, ends), daemon=True)
        listener.start()
        code = process.wait()
        listener.join(timeout=10)
        relay.join(timeout=10)
        server.close()
        spec.unlink(missing_ok=True)
        spec_dir.rmdir()
        end = ends[0] if ends else None
        if code != 0 and (end is None or end["status"] != "failed"):
            end = self._failed(code, list(output), end)
        elif end is None:  # torchrun succeeded but rank 0 never reported: treat as a failure, never as done
            end = self._failed(code, list(output), None)
        self.events.end(end)
        return end

    def _relay_output(self, process: subprocess.Popen, output: Deque[str]) -> None:
        for line in process.stdout:  # torchrun's own messages (and anything a rank printed before its log opened)
            output.append(line.rstrip("\n"))
            log.info("torchrun: %s", line.rstrip())

    def _serve_rank0(self, server: socket.socket, process: subprocess.Popen, ends: List[Dict[str, Any]]) -> None:
        server.settimeout(0.5)
        while True:
            try:
                conn, _ = server.accept()
                break
            except socket.timeout:
                if process.poll() is not None:
                    return
        stop = threading.Event()

        def forward_cancel() -> None:
            while not stop.is_set():
                if self.cancel.wait(0.2):
                    try:
                        conn.sendall(b"cancel\n")
                    except OSError:
                        pass
                    return
        threading.Thread(target=forward_cancel, daemon=True).start()
        try:
            for line in conn.makefile("r", encoding="utf-8"):
                message = json.loads(line)
                kind, params = message["kind"], message["params"]
                if kind == "end":
                    ends.append(params)  # forwarded once every process has exited (the GPUs are free then)
                elif kind == "stage":
                    self.events.stage(params["stage"], params["message"])
                else:
                    getattr(self.events, kind)(params)
        except (OSError, ValueError) as exc:
            log.warning("rank 0's event stream ended: %s", exc)
        finally:
            stop.set()
            conn.close()

    def _failed(self, code: int, output: List[str], end: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        """The end of a run a process left: the rank torchrun names (else 0), its exit and its last log lines;
        run.json rewritten to say so."""
        text = "\n".join(output)
        ranks = [int(r) for r in re.findall(r"rank\s*:\s*(\d+)", text)]
        rank = ranks[0] if ranks else 0
        exits = re.findall(r"exitcode\s*:\s*(-?\d+)", text)
        how = f"exit code {exits[0]}" if exits else f"torchrun exit code {code}"
        if exits and int(exits[0]) < 0:
            how = f"killed by signal {-int(exits[0])}"
        tail = _tail(log_path(self.run_dir, rank), 12) or output[-12:]
        message = (f"training process rank {rank} of {self.devices} stopped ({how}); the other processes were "
                   f"stopped. Last lines of {log_path(self.run_dir, rank)}:\n" + "\n".join(tail))
        error = EngineError(ERROR_CODES["InternalError"], message).to_data()
        latest = checkpoint.latest(self.run_dir / RUN_FOLDER["checkpoints"])
        step = int(checkpoint.read_state(latest)["step"]) if latest is not None else self.start_step
        self._record_failure(error, step)
        return {"runId": self.run_id, "status": "failed", "step": step, "adapterPath": None,
                "checkpointPath": None if latest is None else str(latest), "error": error}

    def _record_failure(self, error: Dict[str, Any], step: int) -> None:
        record = self.run_dir / RUN_FOLDER["record"]
        if not self.run_dir.is_dir():
            return
        lock = run_folder_lock(self.run_dir, self.run_id)  # free: every rank has exited
        try:
            try:
                data = json.loads(record.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {"runId": self.run_id, "totalSteps": self.total_steps}
            data.update({"status": "failed", "step": step, "error": error, "adapterPath": None, "endedAt": _now()})
            write_json(record, data)
        finally:
            lock.release()


def _tail(path: Path, lines: int) -> List[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []
