"""`python -m qlora_engine.worker SPEC.json`: one rank of a train.devices > 1 run, started by torchrun (launch.py).

Every rank runs the same Recipe on its share of each step (distributed.py). Rank 0 owns the run folder and sends
the run's events, one JSON line each, to the engine that launched it over a localhost socket; the engine sends
"cancel" back the same way. Each rank logs to <run-dir>/workers/rank-N.log, which the engine quotes when a rank
dies. The exit status is 0 when the run completed or was cancelled, 1 when it failed: torchrun then stops the
other ranks.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

from .distributed import from_environment
from .events import Events, NullEvents
from .protocol import RUN_FOLDER


def log_path(run_dir: Path, rank: int) -> Path:
    return run_dir / RUN_FOLDER["workers"] / f"rank-{rank}.log"


class SocketEvents(Events):
    """The run's events as JSON lines to the launching engine."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("w", encoding="utf-8")
        self._lock = threading.Lock()

    def _send(self, kind: str, params: Any) -> None:
        with self._lock:
            self._file.write(json.dumps({"kind": kind, "params": params}) + "\n")
            self._file.flush()

    def stage(self, stage: str, message: str) -> None:
        self._send("stage", {"stage": stage, "message": message})

    def download(self, params: Dict[str, Any]) -> None:
        self._send("download", params)

    def progress(self, params: Dict[str, Any]) -> None:
        self._send("progress", params)

    def eval(self, params: Dict[str, Any]) -> None:
        self._send("eval", params)

    def checkpoint(self, params: Dict[str, Any]) -> None:
        self._send("checkpoint", params)

    def end(self, params: Dict[str, Any]) -> None:
        self._send("end", params)


def _listen_for_cancel(sock: socket.socket, cancel: threading.Event) -> None:
    for line in sock.makefile("r", encoding="utf-8"):
        if line.strip() == "cancel":
            cancel.set()
    cancel.set()  # the engine went away: stop at the next step, with a checkpoint


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    run_dir = Path(spec["runDir"])
    rank = int(os.environ.get("RANK", "0"))
    log_file = log_path(run_dir, rank)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab", buffering=0) as handle:  # C libraries' output too, not only Python's
        os.dup2(handle.fileno(), 2)
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace")
    logging.basicConfig(level=os.environ.get("QLORA_ENGINE_LOG", "INFO"), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s rank {rank} %(name)s: %(message)s")
    group = from_environment()
    logging.getLogger(__name__).info("rank %d of %d, pid %d, run %s", group.rank, group.world, os.getpid(),
                                     run_dir.name)
    cancel = threading.Event()
    events: Events = NullEvents()
    if group.main:
        sock = socket.create_connection(("127.0.0.1", int(spec["port"])))
        events = SocketEvents(sock)
        threading.Thread(target=_listen_for_cancel, args=(sock, cancel), daemon=True).start()
    from .recipe import Recipe
    try:
        end = Recipe(spec["config"], run_dir, resume=bool(spec["resume"]), events=events, cancel=cancel,
                     group=group).run()
    finally:
        group.close()
    return 1 if end["status"] == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
