"""A minimal JSON-RPC client over a subprocess's stdio, strict about framing (any stray byte on stdout fails)."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from conftest import ENGINE


class EngineProcess:
    def __init__(self, extra_env: Optional[Dict[str, str]] = None) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ENGINE), **(extra_env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "qlora_engine"], cwd=str(ENGINE), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.notifications: List[Dict[str, Any]] = []
        self.stderr = bytearray()
        self.framing_errors: List[str] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.stderr += chunk

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            header = out.readline()
            if not header:
                return
            if not header.startswith(b"Content-Length: "):
                self.framing_errors.append(f"not a frame header: {header[:200]!r}")
                return
            length = int(header.split(b":")[1])
            if out.readline() != b"\r\n":
                self.framing_errors.append("missing blank line after header")
                return
            self.messages.put(json.loads(out.read(length)))

    def send(self, message: Dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: Any = None, timeout: float = 120) -> Dict[str, Any]:
        self._next_id += 1
        msg_id = self._next_id
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return self._wait(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def notification(self, method: str, predicate=lambda p: True, timeout: float = 120) -> Dict[str, Any]:
        for note in self.notifications:
            if note["method"] == method and predicate(note["params"]):
                return note["params"]
        return self._wait(lambda m: m.get("method") == method and predicate(m["params"]), timeout)["params"]

    def _wait(self, match, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching message; stderr tail:\n{self.stderr[-3000:].decode(errors='replace')}")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if "method" in message and "id" not in message:
                self.notifications.append(message)
            if match(message):
                return message

    def of(self, method: str, run_id: str) -> List[Dict[str, Any]]:
        return [n["params"] for n in self.notifications if n["method"] == method and n["params"].get("runId") == run_id]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
