"""Evaluation during training: validation loss, ROUGE on a validation sample, and the best checkpoint.

- The loss is the token-weighted mean over the validation rows (the first eval_batches micro-batches, or all).
- ROUGE (train.rouge_every > 0): greedy generations (eval.max_new_tokens, eval.batch_size, the template's stop
  strings) of the model being trained, on the first train.rouge_samples validation records, scored by
  rouge_score 0.1.2 (rouge.py) against their references (eval.references, or the response variable and its
  numbered variants; a chat record's final assistant turn); the mean F per type.
- Best (train.best_metric): the lowest eval_loss or the highest ROUGE F so far; ties keep the earlier step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .config import Config, EarlyStopping
from .data import Dataset, Sequence as Row, collate
from .errors import BadConfig
from .generate import generate_batch
from .order import token_loss_sum
from .passes import pass_loss_sum, plan_passes, step_targets
from . import varlen
from .rouge import RougeScorer, reference_fields, references
from .template import PromptTemplate
from .chat import ChatData, reference


@dataclass
class RougeSample:
    """The validation records scored by ROUGE during training: rendered prompts and reference texts."""
    prompts: List[str]
    references: List[List[str]]
    fields: Tuple[str, ...]
    stops: Tuple[str, ...]
    scorer: RougeScorer


def plan_evaluation(config: Config, text: "PromptTemplate | ChatData", dataset: Dataset) -> Optional[RougeSample]:
    """Checks train.rouge_every / best_metric / early_stopping against the rest of the config and the data
    (BadConfig / BadDataset naming the field, file and line); returns the ROUGE sample, or None without
    rouge_every."""
    train = config.train
    wanted = [(train.best_metric, "train.best_metric")]
    if train.early_stopping is not None:
        wanted.append((train.early_stopping.metric, "train.early_stopping.metric"))
    for metric, field in wanted:
        if metric == "eval_loss" and not (train.eval_every or train.rouge_every):
            raise BadConfig(f"{field} eval_loss needs evaluations: set train.eval_every > 0.", field=field)
        if metric is not None and metric != "eval_loss" and not train.rouge_every:
            raise BadConfig(f"{field} {metric} needs ROUGE evaluations: set train.rouge_every > 0.", field=field)
    needs = [field for metric, field in wanted if metric is not None]
    if (train.rouge_every or needs) and not dataset.validation:
        what = "train.rouge_every" if train.rouge_every else needs[0]
        raise BadConfig(f"{what} needs validation records: set data.validation, or data.validation_split > 0.",
                        field=what)
    if not train.rouge_every:
        return None
    records = dataset.validation_records[:train.rouge_samples]
    if isinstance(text, ChatData):  # scored against each conversation's final assistant turn
        turns = [text.turns(r.fields, file=dataset.validation_path, line=r.line) for r in records]
        return RougeSample(prompts=[text.template.prompt(t) for t in turns], references=[[reference(t)] for t in turns],
                           fields=(), stops=text.stop, scorer=RougeScorer())
    names, explicit = reference_fields(config.eval.references, text, dataset.validation_records)
    refs = references(records, names, explicit, dataset.validation_path)
    return RougeSample(prompts=[text.render_prompt(r.fields) for r in records], references=refs, fields=names,
                       stops=text.stop, scorer=RougeScorer())


def validation_loss(model: Any, rows: Sequence[Row], *, micro_batch_size: int, max_batches: int, pad_id: int,
                    device: torch.device, mask_dtype: torch.dtype, tokens_per_pass: int = 0,
                    loss_chunk: int = 0) -> Tuple[float, int]:
    """(mean loss per target token, records) over the first max_batches micro-batches (0: all). With
    tokens_per_pass (token batching), those records run as unpadded varlen passes of up to that many tokens, and
    the host reads the loss once at the end."""
    batches = -(-len(rows) // micro_batch_size)
    if max_batches:
        batches = min(batches, max_batches)
    if tokens_per_pass:
        chosen = rows[:batches * micro_batch_size]
        passes = plan_passes(chosen, tokens_per_pass)
        total = torch.zeros((), device=device)
        with varlen.attention(model):
            for batch in passes:
                total += pass_loss_sum(model, batch.to(device), loss_chunk=loss_chunk)
        return float(total) / max(step_targets(passes), 1), len(chosen)
    loss_sum, targets, records = 0.0, 0, 0
    for k in range(batches):
        batch = collate(rows[k * micro_batch_size:(k + 1) * micro_batch_size], pad_id, packed=False)
        logits = model(**batch.model_inputs(device, mask_dtype)).logits
        loss_sum += float(token_loss_sum(logits, batch.labels.to(device)))
        del logits
        targets += batch.target_tokens
        records += batch.records
    return loss_sum / max(targets, 1), records


def rouge_scores(model: Any, tokenizer: Any, sample: RougeSample, config: Config) -> Dict[str, float]:
    """Greedy generations of `model` (in eval mode, under no_grad) on the sample, scored: mean F per type."""
    size = config.eval.batch_size
    predictions: List[str] = []
    for start in range(0, len(sample.prompts), size):
        out = generate_batch(model, tokenizer, sample.prompts[start:start + size], stops=sample.stops,
                             max_new=config.eval.max_new_tokens, max_length=config.max_length, first_index=start)
        predictions += [c["text"] for c in out]
    return sample.scorer.mean(predictions, sample.references)


def metric_of(row: Dict[str, Any], metric: str) -> Optional[float]:
    """An evaluation row's value of `metric` (None when this evaluation did not measure it, or it is not finite)."""
    value = row.get("evalLoss") if metric == "eval_loss" else (row.get("rouge") or {}).get(metric)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


class EarlyStopper:
    """train.early_stopping: counts the evaluations in a row whose metric did not beat the best so far by more
    than min_delta (lower eval_loss, higher ROUGE); `update` returns why to stop once that count reaches patience."""

    def __init__(self, rule: Optional[EarlyStopping]) -> None:
        self.rule = rule
        self.best: Optional[float] = None
        self.waited = 0

    def update(self, row: Dict[str, Any]) -> Optional[str]:
        rule = self.rule
        value = None if rule is None else metric_of(row, rule.metric)
        if rule is None or value is None:
            return None
        lower = rule.metric == "eval_loss"
        if self.best is None or (value < self.best - rule.min_delta if lower else value > self.best + rule.min_delta):
            self.best, self.waited = value, 0
            return None
        self.waited += 1
        if self.waited < rule.patience:
            return None
        return (f"early stopping: {rule.metric} has not improved by more than {rule.min_delta:g} for {rule.patience} "
                f"evaluation{'s' if rule.patience > 1 else ''} (best {self.best:.4f})")


class BestTracker:
    """The best evaluation so far by train.best_metric: {metric, value, step, path, adapterPath} (run.json's
    `best`), where path is the checkpoint of that step and adapterPath the run's best-adapter/ folder."""

    def __init__(self, metric: Optional[str], checkpoints_dir: Path, adapter_dir: Path) -> None:
        self.metric, self.checkpoints_dir, self.adapter_dir = metric, checkpoints_dir, adapter_dir
        self.record: Optional[Dict[str, Any]] = None

    @property
    def step(self) -> Optional[int]:
        return None if self.record is None else int(self.record["step"])

    def update(self, row: Dict[str, Any]) -> bool:
        """Takes an evaluation row (evalLoss, rouge?); True when it is the new best."""
        if self.metric is None:
            return False
        value = metric_of(row, self.metric)
        if value is None:
            return False  # a loss-only evaluation says nothing about a ROUGE metric
        if self.record is not None:
            old = self.record["value"]
            if (value >= old) if self.metric == "eval_loss" else (value <= old):
                return False
        step = int(row["step"])
        self.record = {"metric": self.metric, "value": value, "step": step,
                     "path": str(self.checkpoints_dir / f"step-{step}"), "adapterPath": str(self.adapter_dir)}
        return True

    def resume(self, previous: Any, checkpoint_step: int) -> None:
        """Takes run.json's `best` of an interrupted run, when it still counts: the same metric, at or before the
        checkpoint resumed from, its checkpoint still on disk."""
        self.record = None
        if not isinstance(previous, dict) or previous.get("metric") != self.metric or self.metric is None:
            return
        step = previous.get("step")
        value = previous.get("value")
        if not isinstance(step, int) or step > checkpoint_step or not isinstance(value, (int, float)):
            return
        if (self.checkpoints_dir / f"step-{step}" / "state.json").is_file():
            self.record = {**previous, "path": str(self.checkpoints_dir / f"step-{step}"),
                         "adapterPath": str(self.adapter_dir)}
