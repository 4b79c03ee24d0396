"""<run-dir>/tensorboard: TensorBoard event files (log.tensorboard), a subscriber to the run's events as
metrics.jsonl is, written with tensorboardX (TensorBoard's file format without TensorFlow).

A resumed run logs again from the step after its checkpoint, while the earlier process may have logged past it
before it stopped: the writer opens at the first step this process logs, with that step as TensorBoard's
`purge_step`, so TensorBoard drops the earlier events from there on and the curves do not double back.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

from .errors import BadConfig
from .events import Events


def check_available() -> None:
    """BadConfig (before any training) when log.tensorboard is on and tensorboardX is not installed."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise BadConfig("log.tensorboard needs the tensorboardX package in the engine's Python: "
                        "pip install tensorboardX (or set log.tensorboard: false)", field="log.tensorboard") from None


class TensorBoardLog(Events):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer: Any = None

    def _scalar(self, tag: str, value: Optional[float], step: int) -> None:
        if value is None:
            return
        if self._writer is None:
            from tensorboardX import SummaryWriter
            # tensorboardX names files by the second and the host only: a resume within the same second would
            # overwrite the earlier file. TensorBoard reads a folder's files in name order, so the first step
            # goes in zero-padded and later processes sort after earlier ones.
            self._writer = SummaryWriter(logdir=str(self.folder), purge_step=step, flush_secs=10,
                                         filename_suffix=f".step{step:09d}.pid{os.getpid()}")
        self._writer.add_scalar(tag, float(value), step)

    def progress(self, params: Dict[str, Any]) -> None:
        step = params["step"]
        self._scalar("train/loss", params["loss"], step)
        self._scalar("train/learning_rate", params["learningRate"], step)
        self._scalar("train/grad_norm", params.get("gradNorm"), step)
        self._scalar("train/tokens_per_second", params.get("tokensPerSecond"), step)
        memory = params.get("gpuMemoryBytes")
        self._scalar("train/gpu_memory_gib", memory / 2**30 if memory else None, step)
        for rank, peak in enumerate(params.get("gpuMemoryPerDevice") or []):  # train.devices > 1 on GPUs
            self._scalar(f"train/gpu_memory_gib/gpu{rank}", peak / 2**30, step)

    def eval(self, params: Dict[str, Any]) -> None:
        step = params["step"]
        self._scalar("eval/loss", params.get("evalLoss"), step)
        for name, value in (params.get("rouge") or {}).items():
            self._scalar(f"eval/{name}", value, step)

    def end(self, params: Dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
