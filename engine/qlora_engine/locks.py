"""Advisory locks that die with their process: one writer per run folder, one trainer per GPU.

An exclusive, non-blocking lock (fcntl.flock on POSIX, msvcrt.locking on Windows) on a lock file; the kernel
releases it when the process ends however it ends (kill -9 included), so a crash never leaves a stale lock.
The file holds the owner's pid and what it does, for the message a second process gets.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .errors import Busy

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False


class Lock:
    """Hold `path` exclusively until release() (or the process ends); Busy (naming the holder) if taken."""

    def __init__(self, path: Path, what: str, busy_message: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: Optional[int] = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(self._fd):
            try:
                holder = os.read(self._fd, 512).decode("utf-8", "replace").strip() or "another process"
            finally:
                os.close(self._fd)
                self._fd = None
            raise Busy(busy_message.format(holder=holder), file=str(path))
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"pid {os.getpid()}: {what}".encode("utf-8"))

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def run_folder_lock(run_dir: Path, run_id: str) -> Lock:
    return Lock(run_dir / ".lock", f"training {run_id}",
                f"{run_dir} is being written by {{holder}}; wait for it to end (or cancel it) before resuming or "
                "reusing this run folder.")


def gpu_lock(index: int, run_id: str) -> Lock:
    """One training run per GPU per user (two would share its memory and both slow down or run out)."""
    home = Path(os.environ.get("QLORA_STUDIO_LOCKS") or Path.home() / ".cache" / "qlora-studio" / "locks")
    return Lock(home / f"gpu-{index}.lock", f"training {run_id} on GPU {index}",
                f"GPU {index} is busy: {{holder}}. One training run per GPU: wait for it to end, or cancel it.")
