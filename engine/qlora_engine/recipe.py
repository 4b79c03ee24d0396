"""The training recipe: one class, one fixed lifecycle.

    recipe = Recipe(config, run_dir, resume=False, events=MyEvents(), cancel=threading.Event())
    summary = recipe.validate()   # DataSummary; raises EngineError on bad input, writes nothing
    end = recipe.run()            # setup -> train -> save -> cleanup; returns TrainDidEndParams

validate() checks config, run folder, device, template, model (without weights), LoRA targets and data before
anything touches the disk. run() never raises for a failure after that: it ends with status "failed" (code and
message in `error`), and run.json says so; only a run that finished says "completed".

The loop is deliberately flat: gather the step's rows, divide the summed token losses by the step's target-token
count, backward per forward pass, clip, step, then log / eval / checkpoint. With train.token_batching (the default)
the step's records run as few unpadded passes as tokens_per_pass allows (passes.py); without it, one padded pass per
micro-batch. "auto" settings are resolved once in setup() from the plan and the GPU's free memory (plan.pick) and
recorded in run.json (`picks`); a resume reuses the recorded micro_batch_size so the data order continues exactly.
The host waits for the GPU only at log steps (and, with an optimizer that cannot skip a non-finite update on the
device, once per step). Cancellation is checked before every forward pass; a cancelled run checkpoints the last
completed optimizer step and ends "cancelled".

Evaluation: the validation loss every eval_every steps; with rouge_every, also greedy generations on the first
rouge_samples validation records, scored with rouge_score (rouge.py). With best_metric, an evaluation that beats
the best so far saves a checkpoint at that step (kept by the keep_checkpoints rotation), copies its adapter to
best-adapter/ and records `best` in run.json; adapter/ is always the last step's.
"""
from __future__ import annotations

import datetime as dt
import gc
import logging
import math
import random
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import checkpoint
from .checkpoint import Snapshot, capture_rng, restore_rng
from .config import Config, parse_config, to_dict
from .data import Batch, Dataset, collate, load_dataset
from .errors import (BadConfig, CheckpointNotFound, EngineError, RunNotFound, TrainingDiverged, WriteFailed,
                     out_of_memory, write_failed)
from .locks import gpu_lock, run_folder_lock
from .metrics_log import MetricsLog
from .tensorboard_log import TensorBoardLog, check_available
from .events import Events, Fanout, NullEvents
from .files import read_jsonl_lenient, replace_dir, write_json, write_jsonl, write_yaml
from .evaluation import BestTracker, EarlyStopper, RougeSample, plan_evaluation, rouge_scores, validation_loss
from .hub_pull import Cancelled as DownloadCancelled
from .model import (add_lora, check_device_support, check_model, compile_layers, compiles, compute_dtype,
                    load_base_model, load_tokenizer, pull_weights, uncompile_layers)
from .optim import build_optimizer, build_scheduler, step_skipping_non_finite
from .order import DataOrder, steps_for_epochs, token_loss_sum
from .isolation import verify_packing
from .packing import mask_dtype
from .passes import pad_to_bucket, pass_loss_sum, rows_targets, step_targets, verify_passes
from .step_graphs import MAX_TOKENS as GRAPH_MAX_TOKENS, NotRecordable, StepGraphs
from .dense_base import dequantize_base
from .plan import resolve
from . import varlen
from .protocol import ERROR_CODES, RUN_FOLDER
from .template import load_template
from .chat import load_chat, resolve_format
from .distributed import Group
from .fsdp import check as check_strategy, shard

__all__ = ["Recipe", "Events", "NullEvents"]
log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside the loop when the cancel flag is seen."""


def _compilation_error(exc: BaseException) -> bool:
    """An error of torch.compile's machinery (Dynamo tracing, Inductor code generation), not of the model."""
    try:
        from torch._dynamo.exc import TorchDynamoException
        if isinstance(exc, TorchDynamoException):
            return True
    except ImportError:  # pragma: no cover
        pass
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    try:
        import numpy as np
        np.random.seed(seed)
    except ImportError:
        pass


class Recipe:
    def __init__(self, config: Dict[str, Any], run_dir: "str | Path", *, resume: bool = False,
                 events: Optional[Events] = None, cancel: Optional[threading.Event] = None,
                 group: Optional[Group] = None) -> None:
        # One of train.devices processes (distributed.py): rank 0 owns the run folder, events and evaluation.
        self.group = group or Group()
        self.raw_config = config
        self.run_dir = Path(run_dir).absolute()
        self.run_id = self.run_dir.name
        self.resume = resume
        # metrics.jsonl listens to the same events as the caller: each metric is reported once.
        self.events: Events = (Fanout(MetricsLog(self.run_dir / RUN_FOLDER["metrics"]), events or NullEvents())
                               if self.group.main else NullEvents())
        self.cancel = cancel or threading.Event()
        self.config: Optional[Config] = None
        self.summary: Optional[Dict[str, int]] = None
        self.total_steps = 0
        self.start_step = 0
        self.step = 0
        self._source = ""
        self._tokenizer: Any = None
        self._dataset: Optional[Dataset] = None
        self._resume_from: Optional[Path] = None
        self._started_at = ""
        self.model: Any = None
        self.optimizer: Any = None
        self.scheduler: Any = None
        self._order: Optional[DataOrder] = None
        self._device = torch.device("cpu")
        self._rouge: Optional[RougeSample] = None
        self.picks: Optional[Dict[str, Any]] = None
        self._compiled = False
        self._graphs: Optional[StepGraphs] = None  # train.cuda_graphs resolved on
        self._matmul_precision: Optional[str] = None  # the process's float32 matmul precision before train.tf32
        self._streak = self._worst_streak = torch.zeros((), dtype=torch.int32)
        self._host_synced = True
        self._locks: List[Any] = []
        self._owns_folder = False  # the run-folder lock is ours: only then is run.json ours to write
        self.best = BestTracker(None, self.checkpoints_dir, self.best_adapter_dir)
        self._stopper = EarlyStopper(None)
        self._stop_reason: Optional[str] = None  # set by an evaluation when train.early_stopping ends the run
        self._peak_memory: Optional[List[int]] = None  # each device's peak at the last log step, rank order; CPU: None

    # ------------------------------------------------------------------ paths
    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / RUN_FOLDER["checkpoints"]

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / RUN_FOLDER["metrics"]

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / RUN_FOLDER["adapter"]

    @property
    def best_adapter_dir(self) -> Path:
        return self.run_dir / RUN_FOLDER["bestAdapter"]

    # ------------------------------------------------------------------ validate
    def validate(self) -> Dict[str, int]:
        """Check every input; return the DataSummary. Raises EngineError; creates and writes nothing."""
        config = resolve_format(parse_config(self.raw_config))
        self._check_run_dir()
        check_device_support(config)
        check_strategy(config)
        template = load_template(config.template) if config.data.format == "template" else None
        self._source, _ = check_model(config)
        self._tokenizer = load_tokenizer(config, self._source)
        text = template or load_chat(config, self._tokenizer)
        self._dataset = load_dataset(config, text, self._tokenizer)
        self._rouge = plan_evaluation(config, text, self._dataset)
        stopping = config.train.early_stopping
        # Early stopping keeps the best checkpoint: by best_metric, else by the metric it watches.
        self.best = BestTracker(config.train.best_metric or (stopping.metric if stopping else None),
                                self.checkpoints_dir, self.best_adapter_dir)
        self._stopper = EarlyStopper(stopping)
        if config.log.tensorboard:
            check_available()
        self.config = config = self._apply_epochs(config)
        self.total_steps = config.train.max_steps
        if self._resume_from is not None:
            self.start_step = int(checkpoint.read_state(self._resume_from)["step"])
            if self.start_step > self.total_steps:
                raise BadConfig(f"the checkpoint is at step {self.start_step}, past train.max_steps="
                                f"{self.total_steps}; raise max_steps to continue.", field="train.max_steps")
        self.summary = dict(self._dataset.summary)
        return dict(self.summary)

    def _check_run_dir(self) -> None:
        if self.resume:
            if not self.run_dir.is_dir():
                raise RunNotFound(f"run folder not found: {self.run_dir}; nothing to resume.", file=str(self.run_dir))
            self._resume_from = checkpoint.latest(self.checkpoints_dir)
            if self._resume_from is None:
                raise CheckpointNotFound(f"{self.run_id} has no complete checkpoint to resume from; start a new "
                                         "run instead.", file=str(self.run_dir))
            checkpoint.verify(self._resume_from)  # a truncated file is named now, not as a load error later
        elif self.group.main and (self.run_dir / RUN_FOLDER["record"]).exists():
            # (the other ranks start once the launcher checked this, and may see rank 0 create the run)
            raise BadConfig(f"{self.run_dir} already holds a run; resume it, or choose a new run folder.",
                            file=str(self.run_dir))

    # ------------------------------------------------------------------ run
    def run(self) -> Dict[str, Any]:
        """setup -> train -> save -> cleanup. Returns (and emits) TrainDidEndParams."""
        if self.summary is None:
            self.validate()  # bad input raises here, before anything is written
        status, error, adapter = "failed", None, None
        try:
            self.setup()
            status = self.train()
            if status == "completed":
                adapter = str(self.save())
        except DownloadCancelled:  # while the model downloaded: what arrived is kept for the next start
            status = "cancelled"
        except torch.cuda.OutOfMemoryError as exc:
            error = out_of_memory(str(exc) + (f"; ran with {self._picks_text()}" if self.picks else ""))
        except EngineError as exc:
            error = exc
        except OSError as exc:
            error = write_failed(exc, self.run_dir)
        except Exception as exc:
            log.error("run %s failed:\n%s", self.run_id, traceback.format_exc())
            error = EngineError(ERROR_CODES["InternalError"], f"{type(exc).__name__}: {exc}")
        finally:
            self.cleanup()
        if error is not None:
            status, adapter = "failed", None
        latest = checkpoint.latest(self.checkpoints_dir)
        end = {"runId": self.run_id, "status": status, "step": self.step, "adapterPath": adapter,
               "checkpointPath": None if latest is None else str(latest),
               "error": None if error is None else error.to_data()}
        try:
            self._write_run_json(status, adapter=adapter, error=end["error"], ended=True)
        except OSError as exc:  # the disk that failed the run may fail this too; the end event still goes out
            log.error("could not write run.json: %s", exc)
        finally:
            for lock in self._locks:  # only now: run.json is the last write of this run
                lock.release()
            self._locks = []
        self.events.end(end)
        return end

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        config = self._config()
        self._device = self.group.device()
        if self.group.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._locks.append(run_folder_lock(self.run_dir, self.run_id))  # Busy: another process writes it
            self._owns_folder = True
        if torch.cuda.is_available():
            self._locks.append(gpu_lock(self._device.index or 0, self.run_id))
        if self.group.main:
            checkpoint.remove_temp(self.checkpoints_dir)
            checkpoint.remove_temp(self.run_dir)  # a half-written adapter/ or best-adapter/ of a crashed run
            # config.yaml is the config as run: a resume with a changed config (say a higher max_steps) rewrites it.
            write_yaml(self.run_dir / RUN_FOLDER["config"], to_dict(config))
        previous = self._previous_run()
        self._started_at = previous.get("startedAt") or _now()
        if self._resume_from is not None:
            self.best.resume(previous.get("best"), int(checkpoint.read_state(self._resume_from)["step"]))
        self._write_run_json("running")
        if config.log.tensorboard and self.group.main:
            self.events = Fanout(self.events, TensorBoardLog(self.run_dir / RUN_FOLDER["tensorboard"]))
        summary = self.summary or {}
        # The data was read and tokenized by validate(); the stage reports what it found.
        self.events.stage("loading-data", f"{summary.get('trainRecords')} training records in "
                          f"{summary.get('trainSequences')} sequences, {summary.get('validationRecords')} for "
                          f"validation, {summary.get('droppedTooLong')} dropped as longer than max_length")

        config = self._resolve_auto(config, previous)
        self.config = config = self._apply_epochs(config)
        self.total_steps = config.train.max_steps
        # A hub model's weights not yet in the cache: stage `downloading`, the bytes reported as they arrive.
        pull_weights(config, lambda p: self.events.download(p.to_wire()), self.cancel)
        self.events.stage("loading-model", f"Loading {config.model} (quantization: {config.quantization}); "
                          f"{self._picks_text()}")
        self.model = add_lora(load_base_model(config, self._source), config,
                              checkpointing=bool(config.train.gradient_checkpointing))
        if config.train.strategy == "fsdp":  # the frozen base sharded across the ranks, which now run in lockstep
            shard(self.model, self._device, self.group.world)
            self.group.lockstep = True
        elif self.picks and self.picks.get("denseBase"):  # the 4-bit weights dequantized once (dense_base.py)
            dequantize_base(self.model)
        if self._device.type == "cuda":  # the fp32 LoRA products on TF32 tensor cores (restored by cleanup)
            self._matmul_precision = torch.get_float32_matmul_precision()
            torch.set_float32_matmul_precision("high" if config.train.tf32 else "highest")
        self._compiled = compiles(config, self._device.type == "cuda")
        if self._compiled:
            compile_layers(self.model)
        graphs = bool(self.picks and self.picks.get("cudaGraphs"))  # picked only with CUDA
        vocab = self.model.get_input_embeddings().weight.shape[0]
        if config.train.token_batching:
            verify_passes(self.model, vocab, self._device, padded=graphs)
        elif config.packing:
            verify_packing(self.model, vocab, self._device)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if graphs:
            self._graphs = StepGraphs(self.model, trainable, self._device, config.train.loss_chunk)
        self.optimizer = build_optimizer(trainable, config.train)
        self.scheduler = build_scheduler(self.optimizer, config.train)
        rows = len(self._data().train)
        self._streak = self._worst_streak = torch.zeros((), dtype=torch.int32, device=self._device)
        self._write_run_json("running")
        if self._resume_from is not None:
            snapshot = checkpoint.load(self._resume_from, self.model, self.optimizer, self.scheduler, self._device)
            restore_rng(snapshot.rng)
            self.step = snapshot.step
            self._order = DataOrder(rows, config.train.micro_batch_size, config.train.seed, snapshot.epoch,
                                    snapshot.batch_index)
            # Lines past the checkpoint were written by the interrupted run; they are about to be redone.
            kept = [r for r in read_jsonl_lenient(self.metrics_path) if r.get("step", 0) <= snapshot.step]
            if self.group.main:
                write_jsonl(self.metrics_path, kept)
            for row in kept:  # early stopping counts on from the evaluations before the checkpoint
                if row.get("type") == "eval":
                    self._stopper.update(row)
        else:
            seed_everything(config.train.seed)
            self.step = 0
            self._order = DataOrder(rows, config.train.micro_batch_size, config.train.seed)
            if self.group.main:
                write_jsonl(self.metrics_path, [])

    # ------------------------------------------------------------------ train
    def train(self) -> str:
        """The loop. Returns "completed" or "cancelled"."""
        train = self._config().train
        self.events.stage("training", f"Training {self.total_steps - self.step} steps: {self._picks_text()}" + (
            "; the first step compiles the decoder layers (about a minute; cached on disk for later runs)"
            if self._compiled else ""))
        self.model.train()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        window = {"start": started, "tokens": 0, "losses": []}
        session_steps = 0
        self._session_tokens = 0
        saved_step = self.step if self._resume_from is not None else -1
        snapshot = self._snapshot()
        try:
            while self.step < self.total_steps:
                snapshot = self._snapshot()  # the state a cancel during this step goes back to
                if self.group.distributed:  # rank 0's cancel or early stop, for every rank at the same step
                    cancel, stop = self.group.flags(self.cancel.is_set(), self._stop_reason is not None,
                                                    device=self._device)
                    if stop:
                        self._stop_reason = self._stop_reason or "early stopping (rank 0's evaluation)"
                        break
                    if cancel:
                        raise Cancelled()
                loss, grad_norm, tokens, lr = self._step_or_fall_back(snapshot)
                self.step += 1
                session_steps += 1
                if session_steps == 1 and self._compiled:
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    self.events.stage("training", f"compiled the decoder layers and ran the first step in "
                                      f"{time.perf_counter() - started:.0f} s; {self._picks_text()}")
                window["tokens"] += tokens
                self._session_tokens += tokens
                window["losses"].append(loss)  # device tensors: read at the log step
                logged = self.step % train.log_every == 0 or self.step == self.total_steps
                if logged:  # on every rank: with several devices, a small all-gather
                    self._peak_memory = self.group.memory_peaks(self._device)
                if logged and self.group.main:
                    self._log_progress(loss_window=window, grad_norm=grad_norm, lr=lr, started=started,
                                       session_steps=session_steps)
                    window = {"start": time.perf_counter(), "tokens": 0, "losses": []}
                if logged or self._host_synced:
                    self._check_finite()
                improved = False
                last = self.step == self.total_steps
                rouge = bool(train.rouge_every) and (self.step % train.rouge_every == 0 or last)
                evaluates = self.group.main or self.group.lockstep  # sharded: every rank runs the passes
                if evaluates and (rouge or (train.eval_every and (self.step % train.eval_every == 0 or last))):
                    improved = self._evaluate(rouge=rouge)
                if improved or (train.save_every and self.step % train.save_every == 0):
                    self._save_checkpoint(self._snapshot())
                    saved_step = self.step
                if improved:
                    self._save_best_adapter()
                if self._stop_reason is not None:
                    self.events.stage("training", f"Stopped at step {self.step} of {self.total_steps}: "
                                      f"{self._stop_reason}")
                    if not self.group.distributed:  # the others hear of it at the top of the loop
                        break
        except Cancelled:
            self.optimizer.zero_grad(set_to_none=True)  # the partial step's gradients are discarded
            if snapshot.step > 0 and saved_step != snapshot.step:
                self._save_checkpoint(snapshot)
            self.step = snapshot.step
            return "cancelled"
        if saved_step != self.step:
            self._save_checkpoint(self._snapshot())
        return "completed"

    def _optimizer_step(self) -> Tuple[torch.Tensor, torch.Tensor, int, float]:
        """One optimizer step over the step's rows: (loss, grad norm) as device tensors (read them only when
        logging: reading waits for the GPU), tokens trained, and the learning rate used."""
        train = self._config().train
        lr = float(self.scheduler.get_last_lr()[0])  # the rate this update uses
        if train.token_batching:
            total, tokens = self._token_batched_backward()
        else:
            total, tokens = self._micro_batched_backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.group.sum_gradients(params)  # every rank now holds the whole step's gradient
        total = self.group.sum(total)
        max_norm = train.max_grad_norm if train.max_grad_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm).detach()
        # Consecutive non-finite steps, counted on the device; read (and acted on) when the host looks anyway.
        bad = ~(torch.isfinite(total) & torch.isfinite(grad_norm))
        self._streak = torch.where(bad, self._streak + 1, torch.zeros_like(self._streak))
        self._worst_streak = torch.maximum(self._worst_streak, self._streak)
        self._host_synced = not step_skipping_non_finite(self.optimizer, grad_norm)
        if self._host_synced:
            norm = float(grad_norm)  # this optimizer cannot skip on the device: look now
            if math.isfinite(norm):
                self.optimizer.step()
            else:  # fp16 overflow: skip the update rather than write inf/nan into the adapter
                log.warning("step %d: gradient norm is %s; update skipped", self.step + 1, norm)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=self._graphs is None)  # CUDA graphs write into these very tensors
        return total, grad_norm, tokens, lr

    def _step_or_fall_back(self, snapshot: Snapshot) -> Tuple[torch.Tensor, torch.Tensor, int, float]:
        """_optimizer_step; if torch.compile fails (on the first step, or on a later recompilation), warn, go
        back to eager layers and redo the step from the same data position and randomness."""
        try:
            return self._optimizer_step()
        except Exception as exc:
            if not (self._compiled and _compilation_error(exc)):
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            log.warning("torch.compile failed; training with eager layers:\n%s", traceback.format_exc())
            self.events.stage("training", f"torch.compile failed ({type(exc).__name__}: {first}); continuing with "
                              "eager layers (set train.compile: false to skip compiling)")
            uncompile_layers(self.model)
            self._compiled = False
            self._graphs = None  # recorded from the compiled layers
            if self.picks is not None:
                self.picks["compile"] = self.picks["cudaGraphs"] = False
            self.optimizer.zero_grad(set_to_none=True)
            self._order.epoch, self._order.index = snapshot.epoch, snapshot.batch_index
            restore_rng(snapshot.rng)
            return self._optimizer_step()

    def _check_finite(self) -> None:
        """End the run (TrainingDiverged) once train.max_nonfinite_steps steps in a row had a non-finite loss or
        gradient norm. Each was skipped, so the adapter and the checkpoints hold the last good weights."""
        config = self._config()
        limit = config.train.max_nonfinite_steps
        worst = int(self._worst_streak)
        if worst < limit:
            return
        if compute_dtype(config) == torch.float16:
            cause, field = ("float16 overflow (compute_dtype float16): use bfloat16 if the GPU supports it, or a "
                            "lower train.learning_rate"), "compute_dtype"
        else:
            cause, field = (f"a learning rate too high for this model (train.learning_rate {config.train.learning_rate:g}"
                            f"{', no warmup' if config.train.warmup_steps == 0 else ''}), or records that break the "
                            "loss"), "train.learning_rate"
        raise TrainingDiverged(
            f"training diverged at step {self.step}: the loss or gradient norm was not finite for {worst} steps in a "
            f"row (train.max_nonfinite_steps: {limit}); those updates were skipped, so the last checkpoint and the "
            f"adapter's weights are the last good ones. Likely cause: {cause}.", field=field)

    def _token_batched_backward(self) -> Tuple[torch.Tensor, int]:
        """The step's records in as few varlen passes as tokens_per_pass allows; backward per pass."""
        train = self._config().train
        train_rows = self._data().train
        rows = [train_rows[i] for _ in range(train.gradient_accumulation) for i in self._order.next()]
        passes = self.group.passes(rows, int(train.tokens_per_pass))
        # Divided by the whole step's targets on every rank: summed across ranks, the gradients are one process's.
        targets = max(1, rows_targets(rows) if self.group.distributed else step_targets(passes))
        total = torch.zeros((), device=self._device)
        with varlen.attention(self.model):
            for batch in passes:
                self._check_cancel()
                if self._graphs is not None and self._graph_backward(batch, targets, total):
                    continue
                loss = pass_loss_sum(self.model, batch.to(self._device), loss_chunk=train.loss_chunk) / targets
                loss.backward()
                total += loss.detach()
                del loss
        return total, sum(len(r) for r in rows)

    def _graph_backward(self, batch: Any, targets: int, total: torch.Tensor) -> bool:
        """The pass through a CUDA graph (its loss added to total); False for a pass too long to gain from one,
        and, with graphs off for the rest of the run, when it cannot be recorded."""
        assert self._graphs is not None
        if batch.tokens > GRAPH_MAX_TOKENS:
            return False
        try:
            total += self._graphs.backward(pad_to_bucket(batch), targets)
            return True
        except NotRecordable as exc:
            log.warning("CUDA graphs off: %s", exc, exc_info=exc.__cause__)
            self.events.stage("training", f"could not record the training pass as a CUDA graph ({exc}); "
                              "continuing without (set train.cuda_graphs: false to skip trying)")
            self._graphs = None
            if self.picks is not None:
                self.picks["cudaGraphs"] = False
            torch.cuda.empty_cache()  # the graphs' memory pool
            return False

    def _check_cancel(self) -> None:
        """Between forward passes, on one process; with several, at the next step (a rank leaving mid-step would
        leave the others waiting in the gradient sum)."""
        if not self.group.distributed and self.cancel.is_set():
            raise Cancelled()

    def _micro_batched_backward(self) -> Tuple[torch.Tensor, int]:
        """The straightforward path: one padded forward pass per micro-batch."""
        train = self._config().train
        every = [self._batch(self._order.next()) for _ in range(train.gradient_accumulation)]
        targets = max(1, sum(b.target_tokens for b in every))
        batches = self.group.share(every)
        total = torch.zeros((), device=self._device)
        dtype = mask_dtype(self.model)
        for batch in batches:
            self._check_cancel()
            # No name keeps the logits: the loss saves only its log-softmax, so the logits (T x vocab floats,
            # the largest activation) are freed before backward instead of living through it.
            loss = token_loss_sum(self.model(**batch.model_inputs(self._device, dtype)).logits,
                                  batch.labels.to(self._device)) / targets
            loss.backward()
            total += loss.detach()
            del loss
        return total, sum(b.tokens for b in every)

    def _resolve_auto(self, config: Config, previous: Dict[str, Any]) -> Config:
        """Replace "auto" settings by the plan's picks for this device; a resume keeps the run's micro_batch_size."""
        import dataclasses
        free = None
        if self._device.type == "cuda":
            from .env import process_free
            index = self._device.index or 0
            free = float(process_free(index, *torch.cuda.mem_get_info(index)))
        recorded = (previous.get("picks") or {}).get("microBatchSize") if self._resume_from is not None else None
        if config.train.micro_batch_size == "auto" and isinstance(recorded, int):
            config = dataclasses.replace(config, train=dataclasses.replace(config.train, micro_batch_size=recorded))
        config, self.picks = resolve(config, free, devices=self.group.world)
        # Every rank trains with rank 0's picks: the data order depends on micro_batch_size.
        config, self.picks = self.group.broadcast((config, self.picks))
        self.config = config
        return config

    def _apply_epochs(self, config: Config) -> Config:
        """With train.epochs, max_steps becomes the steps of that many passes over the training rows (once
        micro_batch_size is known: at validate when given, after the picks when "auto"), so the schedule, the
        progress and config.yaml all use it."""
        import dataclasses
        train = config.train
        if train.epochs is None or not isinstance(train.micro_batch_size, int):
            return config
        steps = steps_for_epochs(train.epochs, len(self._data().train), train.micro_batch_size,
                                 train.gradient_accumulation)
        return dataclasses.replace(config, train=dataclasses.replace(train, max_steps=steps))

    def _picks_text(self) -> str:
        p = self.picks or {}
        return ((f"strategy {p.get('strategy')} over {self.group.world} devices, " if self.group.distributed else "")
                + f"micro_batch_size {p.get('microBatchSize')}, gradient checkpointing "
                f"{'on' if p.get('gradientCheckpointing') else 'off'}, up to {p.get('tokensPerPass'):,} tokens per "
                f"forward pass, torch.compile {'on' if p.get('compile') else 'off'}, CUDA graphs "
                f"{'on' if p.get('cudaGraphs') else 'off'}, dense base {'on' if p.get('denseBase') else 'off'} "
                f"({p.get('reason')})")

    def _batch(self, rows: List[int]) -> Batch:
        train_rows = self._data().train
        return collate([train_rows[i] for i in rows], self._tokenizer.pad_token_id, packed=self._config().packing)

    def _log_progress(self, *, loss_window: Dict[str, Any], grad_norm: torch.Tensor, lr: float, started: float,
                      session_steps: int) -> None:
        loss = float(torch.stack(loss_window["losses"]).mean())  # waits for the GPU: the only wait of a step
        norm = float(grad_norm)
        now = time.perf_counter()
        elapsed = now - started
        peaks = self._peak_memory
        row = {"step": self.step, "epoch": round(self._order.epochs, 4),
               "loss": loss, "learningRate": lr, "gradNorm": norm, "tokensPerSecond": loss_window["tokens"] / max(now - loss_window["start"], 1e-9),
               "tokens": self._session_tokens,
               "gpuMemoryBytes": max(peaks) if peaks else None,
               **({"gpuMemoryPerDevice": peaks} if self.group.distributed else {}),
               "elapsedSeconds": elapsed,
               "etaSeconds": (self.total_steps - self.step) * elapsed / max(session_steps, 1)}
        self.events.progress({"runId": self.run_id, "totalSteps": self.total_steps, **row})

    @torch.no_grad()
    def _evaluate(self, rouge: bool = False) -> bool:
        """Validation loss (and ROUGE when due); returns whether it is the best so far by train.best_metric."""
        validation = self._data().validation
        if not validation:
            return False
        config = self._config()
        rng = capture_rng()  # evaluation must not change the training run's randomness
        self.model.eval()
        loss, records = validation_loss(self.model, validation, micro_batch_size=config.train.micro_batch_size,
                                        max_batches=config.train.eval_batches, pad_id=self._tokenizer.pad_token_id,
                                        device=self._device, mask_dtype=mask_dtype(self.model),
                                        tokens_per_pass=int(config.train.tokens_per_pass) if config.train.token_batching
                                        else 0, loss_chunk=config.train.loss_chunk)
        row: Dict[str, Any] = {"step": self.step, "evalLoss": loss, "evalRecords": records}
        if rouge and self._rouge is not None:
            row["rouge"] = rouge_scores(self.model, self._tokenizer, self._rouge, config)
            row["rougeRecords"] = len(self._rouge.prompts)
        self.model.train()
        restore_rng(rng)
        improved = self.best.update(row)
        if improved:
            row["best"] = True
        self._stop_reason = self._stopper.update(row)
        self.events.eval({"runId": self.run_id, **row})
        return improved

    def _save_best_adapter(self) -> None:
        """best-adapter/ <- the best checkpoint's adapter, complete before it replaces the previous one."""
        if not self.group.main:
            return
        source = Path(self.best.record["path"]) / "adapter"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-best-adapter-", dir=self.run_dir))
        try:
            shutil.copytree(source, tmp / "adapter")
            replace_dir(tmp / "adapter", self.best_adapter_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._write_run_json("running")

    def _snapshot(self) -> Snapshot:
        return Snapshot(step=self.step, epoch=self._order.epoch, batch_index=self._order.index, rng=capture_rng())

    def _save_checkpoint(self, snapshot: Snapshot) -> None:
        if not self.group.main:
            return
        try:
            path = checkpoint.save(self.checkpoints_dir, snapshot, self.model, self.optimizer, self.scheduler)
        except OSError as exc:
            previous = checkpoint.latest(self.checkpoints_dir)
            raise WriteFailed(
                f"could not write checkpoint step-{snapshot.step} in {self.checkpoints_dir}: "
                f"{exc.strerror or exc}. Nothing of it was kept; "
                + (f"{previous.name} is intact: free space and resume from it." if previous is not None
                   else "free space and start again."), file=str(self.checkpoints_dir)) from None
        checkpoint.prune(self.checkpoints_dir, self._config().train.keep_checkpoints, protect=self.best.step)
        self._write_run_json("running", step=snapshot.step)
        self.events.checkpoint({"runId": self.run_id, "step": snapshot.step, "path": str(path)})

    # ------------------------------------------------------------------ save / cleanup
    def save(self) -> Path:
        """The final adapter, in PEFT format, renamed into place when complete (rank 0's: the replicas are equal)."""
        if not self.group.main:
            return self.adapter_dir
        self.events.stage("saving", "Saving the adapter")
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-adapter-", dir=self.run_dir))
        try:
            # save_embedding_layers=False: LoRA on lm_head must not copy the (frozen, unchanged) base embeddings.
            self.model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
            replace_dir(tmp, self.adapter_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.adapter_dir

    def cleanup(self) -> None:
        """Drop the model and optimizer so a long-lived engine gives the GPU memory back."""
        self.model = self.optimizer = self.scheduler = None
        if self._matmul_precision is not None:
            torch.set_float32_matmul_precision(self._matmul_precision)
            self._matmul_precision = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ helpers
    def _config(self) -> Config:
        assert self.config is not None, "validate() first"
        return self.config

    def _data(self) -> Dataset:
        assert self._dataset is not None, "validate() first"
        return self._dataset

    def _previous_run(self) -> Dict[str, Any]:
        import json
        try:
            return json.loads((self.run_dir / RUN_FOLDER["record"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write_run_json(self, status: str, *, step: Optional[int] = None, adapter: Optional[str] = None,
                        error: Optional[Dict[str, Any]] = None, ended: bool = False) -> None:
        if not self.run_dir.is_dir() or not self._owns_folder:
            return
        write_json(self.run_dir / RUN_FOLDER["record"], {
            "runId": self.run_id, "status": status, "step": self.step if step is None else step,
            "totalSteps": self.total_steps, "startedAt": self._started_at or _now(),
            "endedAt": _now() if ended else None, "data": self.summary, "adapterPath": adapter, "error": error,
            "best": self.best.record, "picks": self.picks, "stopReason": self._stop_reason})
