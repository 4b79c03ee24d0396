"""Request handlers: the engine's side of protocol/engine.ts, wired to Recipe, Generator and plan.

One training run at a time, on a worker thread; its events become train/did* notifications. train/start
validates synchronously, so bad input comes back as the request's JSON-RPC error (with file/line/field) and no
run folder is created; the rest of the run happens after the reply. Generation refuses to run during training
(both want the GPU) and training frees the generator's cached model first.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

from . import protocol as P
from .env import env_report
from .errors import Busy, InvalidParams, download_cancelled
from .events import Events
from .generate import Generator
from .launch import LaunchedRun, devices_for
from .recipe import Recipe
from .rpc import Connection

log = logging.getLogger(__name__)


class RpcEvents(Events):
    """Recipe events -> notifications. `on_end` runs before didEnd is sent, so a client reacting to didEnd
    with a new train/start never sees Busy."""

    def __init__(self, conn: Connection, run_id: str, on_end: Callable[[], None]) -> None:
        self.conn, self.run_id, self.on_end = conn, run_id, on_end

    def stage(self, stage: str, message: str) -> None:
        self.conn.notify(P.TRAIN_DID_STAGE, {"runId": self.run_id, "stage": stage, "message": message})

    def download(self, params: Dict[str, Any]) -> None:
        self.conn.notify(P.TRAIN_DID_STAGE, {"runId": self.run_id, "stage": "downloading",
                                             "message": f"Downloading {params['model']}", "download": params})

    def progress(self, params: Dict[str, Any]) -> None:
        self.conn.notify(P.TRAIN_DID_PROGRESS, params)

    def eval(self, params: Dict[str, Any]) -> None:
        self.conn.notify(P.TRAIN_DID_EVAL, params)

    def checkpoint(self, params: Dict[str, Any]) -> None:
        self.conn.notify(P.TRAIN_DID_CHECKPOINT, params)

    def end(self, params: Dict[str, Any]) -> None:
        self.on_end()
        self.conn.notify(P.TRAIN_DID_END, params)


@dataclass
class ActiveRun:
    recipe: Union[Recipe, LaunchedRun]
    cancel: threading.Event
    thread: Optional[threading.Thread] = None
    done: threading.Event = field(default_factory=threading.Event)


def _require(params: Any, name: str, kind: type) -> Any:
    if not isinstance(params, dict) or not isinstance(params.get(name), kind):
        raise InvalidParams(f"missing or invalid parameter {name!r}", field=name)
    return params[name]


def _absolute(params: Any, name: str) -> Path:
    path = Path(_require(params, name, str))
    if not path.is_absolute():
        raise InvalidParams(f"{name} must be an absolute path, got {str(path)!r}", field=name)
    return path


class Handlers:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.generator = Generator()
        self._run: Optional[ActiveRun] = None
        self._stop = False

    @property
    def handlers(self) -> Dict[str, Callable[[Any], Any]]:
        return {P.INITIALIZE: self.initialize, P.SHUTDOWN: self.shutdown, P.TRAIN_START: self.train_start,
                P.TRAIN_CANCEL: self.train_cancel, P.TRAIN_PLAN: self.train_plan, P.MODEL_IMPORT: self.model_import,
                P.MODEL_EXPORT: self.model_export, P.MODEL_PULL: self.model_pull, P.GENERATE: self.generate}

    def serve(self) -> None:
        self.conn.serve(self.handlers, {P.EXIT: self._exit}, lambda: self._stop)
        self._finish_run()  # stdin closed or shutdown: let an active run checkpoint and end

    # ------------------------------------------------------------------ lifecycle
    def initialize(self, params: Any) -> Dict[str, Any]:
        return env_report()

    def shutdown(self, params: Any) -> None:
        self._finish_run()
        self.generator.release()
        self._stop = True
        return None

    def _exit(self, params: Any) -> None:
        self._stop = True

    def _finish_run(self) -> None:
        run = self._run
        if run is not None and not run.done.is_set():
            log.info("cancelling run %s before exit", run.recipe.run_id)
            run.cancel.set()
            if run.thread is not None:
                run.thread.join()

    def _busy(self) -> Optional[ActiveRun]:
        run = self._run
        return run if run is not None and not run.done.is_set() else None

    # ------------------------------------------------------------------ training
    def train_start(self, params: Any) -> Dict[str, Any]:
        run_dir = Path(_require(params, "runDir", str))
        if not run_dir.is_absolute():
            raise InvalidParams(f"runDir must be an absolute path, got {str(run_dir)!r}", field="runDir")
        config = _require(params, "config", dict)
        resume = params.get("resume", False)
        if not isinstance(resume, bool):
            raise InvalidParams("resume must be true or false", field="resume")
        active = self._busy()
        if active is not None:
            raise Busy(f"run {active.recipe.run_id} is still training; cancel it or wait for it to end.")
        cancel = threading.Event()
        run = ActiveRun(recipe=None, cancel=cancel)  # type: ignore[arg-type]
        events = RpcEvents(self.conn, run_dir.name, run.done.set)
        devices = devices_for(config)
        recipe = (Recipe(config, run_dir, resume=resume, cancel=cancel, events=events) if devices == 1 else
                  LaunchedRun(config, run_dir, devices=devices, resume=resume, cancel=cancel, events=events))
        run.recipe = recipe
        summary = recipe.validate()  # EngineError -> this request's error; nothing written
        self.generator.release()  # training needs the GPU memory the generator holds
        run.thread = threading.Thread(target=self._train, args=(run,), name=f"train-{recipe.run_id}", daemon=True)
        self._run = run
        run.thread.start()
        return {"runId": recipe.run_id, "runDir": str(recipe.run_dir), "totalSteps": recipe.total_steps,
                "startStep": recipe.start_step, "data": summary}

    def _train(self, run: ActiveRun) -> None:
        try:
            run.recipe.run()
        except Exception:  # run() reports its own failures; this is a bug guard
            log.exception("run %s crashed", run.recipe.run_id)
        finally:
            run.done.set()

    def train_cancel(self, params: Any) -> Dict[str, Any]:
        run_id = _require(params, "runId", str)
        run = self._busy()
        if run is None or run.recipe.run_id != run_id:
            return {"cancelling": False}
        run.cancel.set()
        return {"cancelling": True}

    def train_plan(self, params: Any) -> Dict[str, Any]:
        from .plan import estimate
        return estimate(_require(params, "config", dict))

    # ------------------------------------------------------------------ models
    def model_import(self, params: Any) -> Dict[str, Any]:
        from .gguf_import import import_gguf
        source, out = _absolute(params, "source"), _absolute(params, "out")
        return import_gguf(source, out, self._model_progress())

    def model_export(self, params: Any) -> Dict[str, Any]:
        from .export import export_gguf, export_merged
        adapter, out = _absolute(params, "adapter"), _absolute(params, "out")
        form = params.get("format", "merged")
        if form not in ("merged", "gguf"):
            raise InvalidParams(f"model/export: format must be merged or gguf, got {form!r}", field="format")
        active = self._busy()
        if active is not None:
            raise Busy(f"run {active.recipe.run_id} is training; export when it ends or cancel it.")
        self.generator.release()  # the merged model needs the memory the generator's cached model holds
        config = _require(params, "config", dict)
        if form == "gguf":
            return export_gguf(config, adapter, out, _require(params, "quant", str), self._model_progress())
        return export_merged(config, adapter, out, _require(params, "dtype", str), self._model_progress())

    def model_pull(self, params: Any) -> Dict[str, Any]:
        from .hub_pull import Cancelled, pull
        model = _require(params, "model", str)
        revision = params.get("revision")
        if revision is not None and not isinstance(revision, str):
            raise InvalidParams("revision must be a string", field="revision")
        try:
            return pull(model, revision, report=self._download_progress(), cancel=self.conn.cancel_flag())
        except Cancelled:
            raise download_cancelled(model) from None

    def _download_progress(self) -> Callable[[Any], None]:
        """hub_pull.Progress -> model/didProgress, stage downloading (hub_pull already reports a few times a second)."""
        def report(p: Any) -> None:
            fraction = p.bytes_done / p.bytes_total if p.bytes_total else None
            self.conn.notify(P.MODEL_DID_PROGRESS, {"stage": "downloading", "fraction": fraction,
                                                    "download": p.to_wire()})
        return report

    def _model_progress(self) -> Callable[[str, Optional[float]], None]:
        """model/didProgress, at most ~100 notifications per stage (a 10 GB checksum must not flood the channel)."""
        last = {"stage": "", "fraction": -1.0}

        def progress(stage: str, fraction: Optional[float]) -> None:
            if stage == last["stage"] and fraction is not None and fraction - last["fraction"] < 0.01 and fraction < 1:
                return
            last.update(stage=stage, fraction=-1.0 if fraction is None else fraction)
            self.conn.notify(P.MODEL_DID_PROGRESS, {"stage": stage, "fraction": fraction})
        return progress

    # ------------------------------------------------------------------ generation
    def generate(self, params: Any) -> Dict[str, Any]:
        active = self._busy()
        if active is not None:
            raise Busy(f"run {active.recipe.run_id} is training on the GPU; generate when it ends or cancel it.")
        from .hub_pull import Cancelled
        try:
            return self.generator.generate(params, notify=lambda p: self.conn.notify(P.GENERATE_DID_STREAM, p),
                                           download=self._download_progress(), cancel=self.conn.cancel_flag())
        except Cancelled:  # $/cancelRequest while the base model downloaded
            raise download_cancelled(str((params.get("config") or {}).get("model"))) from None
