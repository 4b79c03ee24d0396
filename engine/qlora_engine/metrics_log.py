"""<run-dir>/metrics.jsonl: a subscriber to the run's events, so each metric is emitted once (the recipe reports
it; this file and the JSON-RPC notifications both listen). Lines are protocol/run-folder.ts' TrainLine and EvalLine,
keys in the order protocol.py declares them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .events import Events
from .files import append_jsonl
from .protocol import EVAL_LINE_KEYS, TRAIN_LINE_KEYS


class MetricsLog(Events):
    def __init__(self, path: Path) -> None:
        self.path = path

    def progress(self, params: Dict[str, Any]) -> None:
        # gpuMemoryPerDevice comes with several devices only; every other key is always there.
        append_jsonl(self.path, {"type": "train", **{k: params[k] for k in TRAIN_LINE_KEYS[1:]
                                                     if k != "gpuMemoryPerDevice" or k in params}})

    def eval(self, params: Dict[str, Any]) -> None:
        append_jsonl(self.path, {"type": "eval", **{k: params[k] for k in EVAL_LINE_KEYS[1:] if k in params}})
