"""What a training run reports while it runs: one small interface, implemented by the server (JSON-RPC
notifications) and by anything else that drives a Recipe (benchmarks, tests). Params are the camelCase
notification params of protocol/engine.ts, runId included."""
from __future__ import annotations

from typing import Any, Dict


class Events:
    """Base class: every method is a no-op, so a subclass overrides only what it needs."""

    def stage(self, stage: str, message: str) -> None:
        """'loading-data' | 'loading-model' | 'training' | 'saving' (TrainDidStageParams without runId)."""

    def download(self, params: Dict[str, Any]) -> None:
        """DownloadProgress, a few times a second while a hub model's weights are fetched (stage 'downloading')."""

    def progress(self, params: Dict[str, Any]) -> None:
        """TrainDidProgressParams, every train.log_every optimizer steps (from rank 0 with train.devices > 1)."""

    def eval(self, params: Dict[str, Any]) -> None:
        """TrainDidEvalParams, every train.eval_every steps and at the end."""

    def checkpoint(self, params: Dict[str, Any]) -> None:
        """TrainDidCheckpointParams, once the checkpoint folder is complete on disk."""

    def end(self, params: Dict[str, Any]) -> None:
        """TrainDidEndParams, exactly once per Recipe.run()."""


class NullEvents(Events):
    """Reports nothing."""


class Fanout(Events):
    """Every event to each of several subscribers, in order (the run folder's metrics log first)."""

    def __init__(self, *subscribers: Events) -> None:
        self.subscribers = subscribers

    def stage(self, stage: str, message: str) -> None:
        for s in self.subscribers:
            s.stage(stage, message)

    def download(self, params: Dict[str, Any]) -> None:
        for s in self.subscribers:
            s.download(params)

    def progress(self, params: Dict[str, Any]) -> None:
        for s in self.subscribers:
            s.progress(params)

    def eval(self, params: Dict[str, Any]) -> None:
        for s in self.subscribers:
            s.eval(params)

    def checkpoint(self, params: Dict[str, Any]) -> None:
        for s in self.subscribers:
            s.checkpoint(params)

    def end(self, params: Dict[str, Any]) -> None:
        for s in self.subscribers:
            s.end(params)
