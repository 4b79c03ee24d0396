"""Training data: JSONL records -> template (or chat template) -> token ids + labels -> (optionally packed) batches.

- Records are read with 1-based line numbers so every error says file:line (and column for bad JSON).
- Prompt and response are tokenized separately and concatenated, so the loss boundary is exact (a BPE merge
  across the boundary cannot shift it), then EOS is appended: the model learns to stop.
- Labels are -100 where there is no loss: on prompt tokens when loss_on is "response", on padding, and on the
  first token of every record (nothing in the record predicts it, and in a packed row the previous record's
  last token must not be trained to predict the next record's first).
- Records longer than max_length are dropped and counted (DataSummary.droppedTooLong), never truncated.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence as Seq, Tuple

import torch

from .chat import ChatData
from .config import Config
from .jsonl import Record, read_jsonl  # noqa: F401 (Record: part of this module's interface)
from .errors import BadConfig, BadDataset, BadTemplate
from .packing import block_causal_mask, pack
from .sequence import IGNORE, Sequence
from .template import PromptTemplate

@dataclass
class Dataset:
    train: List[Sequence]
    validation: List[Sequence]
    summary: Dict[str, int]  # DataSummary of protocol/engine.ts
    validation_records: List[Record] = dataclass_field(default_factory=list)  # the records behind `validation`, in order
    validation_path: str = ""  # the file those records' line numbers refer to


def field_problem(rule: str, record: Dict[str, Any], name: str) -> Optional[str]:
    """Why `record` cannot serve variable `name` used as `rule` (template.FIELD_RULES), or None."""
    if rule == "optional":
        return None
    if name not in record:
        return "is missing"
    value = record[name]
    if rule == "tested":
        return None
    if value is None:
        return "is null"
    if rule == "structured":
        return None
    if value == "":
        return "is empty"
    if not isinstance(value, str):
        kind = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else \
            "a boolean" if isinstance(value, bool) else "a number"
        return f"is {kind}, not a string"
    return None


def field_problems(records: Seq[Record], template: PromptTemplate,
                   variables: Optional[frozenset] = None) -> List[Tuple[int, str, str]]:
    """(line, field, problem) of every record that cannot serve the template, by the shared field rules."""
    rules = template.rules(None if variables is None else frozenset(variables))
    out = []
    for record in records:
        for name in sorted(rules):
            problem = field_problem(rules[name], record.fields, name)
            if problem is not None:
                out.append((record.line, name, problem))
    return out


def check_fields(records: Seq[Record], template: PromptTemplate, path: str | Path,
                 variables: Optional[frozenset] = None) -> None:
    """Every record must serve every template variable as the template uses it (template.FIELD_RULES: a guarded
    variable may be absent, a tested one null or empty, a printed one must be a non-empty string), which is the
    rule the editor's linter applies.

    A variable missing from the first record is a template problem (a typo, or the wrong data file); missing
    later, it is that record's problem. Either way the message names the file, line and field.
    """
    path = Path(path)
    problems = field_problems(records[:1], template, variables) or field_problems(records, template, variables)
    if not problems:
        return
    line, name, problem = problems[0]
    record = next(r for r in records if r.line == line)
    has = ", ".join(sorted(record.fields)) or "no fields"
    where = f"{path.name}:{line}"
    if problem == "is missing" and record is records[0]:
        raise BadTemplate(
            f"{where}: field '{name}' used by {template.name} is missing (record has: {has}). Fix the "
            f"variable in {template.name} (line {template.variable_line(name)}) or the data file.",
            file=str(path), line=line, field=name)
    raise BadDataset(f"{where}: field '{name}' used by {template.name} {problem} (record has: {has}).",
                     file=str(path), line=line, field=name)


def encode(records: Seq[Record], template: PromptTemplate, tokenizer: Any, *, max_length: int, loss_on: str,
           path: str | Path, kept: Optional[List[Record]] = None) -> Tuple[List[Sequence], int]:
    """Render and tokenize records; returns (sequences, number dropped as longer than max_length). `kept`, when
    given, receives the records that became sequences."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise BadConfig("the model's tokenizer has no EOS token; training needs one to teach the model to stop.",
                        field="model")
    prompts, responses = [], []
    for record in records:
        try:
            prompt, response = template.render(record.fields)
        except BadTemplate as exc:
            raise BadTemplate(f"{Path(path).name}:{record.line}: {exc.message}", file=exc.file, line=exc.line,
                              field=exc.field) from None
        prompts.append(prompt)
        responses.append(response)
    prompt_ids = _tokenize(tokenizer, prompts, add_special_tokens=True)
    response_ids = _tokenize(tokenizer, responses, add_special_tokens=False)
    out: List[Sequence] = []
    dropped = 0
    for record, p, r in zip(records, prompt_ids, response_ids):
        ids = list(p) + list(r) + [eos]
        if len(ids) > max_length:
            dropped += 1
            continue
        if kept is not None:
            kept.append(record)
        if loss_on == "response":
            labels = [IGNORE] * len(p) + list(r) + [eos]
        else:
            labels = list(ids)
        labels[0] = IGNORE
        out.append(Sequence(ids, labels, (len(ids),)))
    return out, dropped


def encode_chat(records: Seq[Record], chat: ChatData, tokenizer: Any, *, max_length: int, loss_on: str,
                path: str | Path, kept: Optional[List[Record]] = None) -> Tuple[List[Sequence], int]:
    """Chat records as encode() does templated ones: each record's text cut into untrained and trained pieces
    (chat.ChatTemplate.segments), every piece tokenized on its own so a trained span starts and ends on a token
    boundary, without added special tokens (the chat template writes them) and without an appended EOS (its
    end-of-turn marker ends each turn)."""
    pieces: List[List[Tuple[str, bool]]] = []
    for record in records:
        turns = chat.turns(record.fields, file=str(path), line=record.line)
        try:
            pieces.append(chat.template.segments(turns))
        except BadTemplate as exc:
            raise BadTemplate(f"{Path(path).name}:{record.line}: {exc.message}", file=exc.file, line=exc.line,
                              field=exc.field) from None
    flat = _tokenize(tokenizer, [text for segments in pieces for text, _ in segments], add_special_tokens=False)
    out: List[Sequence] = []
    dropped = at = 0
    for record, segments in zip(records, pieces):
        ids: List[int] = []
        labels: List[int] = []
        for (_, trained), piece in zip(segments, flat[at:at + len(segments)]):
            ids += piece
            labels += piece if trained or loss_on == "all" else [IGNORE] * len(piece)
        at += len(segments)
        if len(ids) > max_length:
            dropped += 1
            continue
        if kept is not None:
            kept.append(record)
        labels[0] = IGNORE
        out.append(Sequence(ids, labels, (len(ids),)))
    return out, dropped


def _tokenize(tokenizer: Any, texts: List[str], *, add_special_tokens: bool) -> List[List[int]]:
    ids: List[List[int]] = []
    for start in range(0, len(texts), 512):  # batched calls are much faster with fast tokenizers
        chunk = texts[start:start + 512]
        ids.extend(tokenizer(chunk, add_special_tokens=add_special_tokens)["input_ids"])
    return ids


def split_validation(records: List[Record], fraction: float, seed: int) -> Tuple[List[Record], List[Record]]:
    """Hold out a seeded fraction of train (at least one record when fraction > 0, never all of them)."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    count = min(max(1, round(len(records) * fraction)), len(records) - 1)
    held = set(random.Random(seed).sample(range(len(records)), count))
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def load_dataset(config: Config, text: "PromptTemplate | ChatData", tokenizer: Any) -> Dataset:
    """The training and validation rows. `text` renders records: the prompt template, or a chat format and its
    chat template (chat.load_chat)."""
    templated = isinstance(text, PromptTemplate)
    train_records = read_jsonl(config.data.train, field="data.train")
    if templated:
        check_fields(train_records, text, config.data.train)
    if config.data.validation is not None:
        val_records = read_jsonl(config.data.validation, field="data.validation")
        if templated:
            check_fields(val_records, text, config.data.validation)
    else:
        train_records, val_records = split_validation(train_records, config.data.validation_split,
                                                      config.train.seed)
    common = dict(max_length=config.max_length, loss_on=config.loss_on)
    encoder = encode if templated else encode_chat
    train, dropped_train = encoder(train_records, text, tokenizer, path=config.data.train, **common)
    val_path = config.data.validation or config.data.train
    val_kept: List[Record] = []
    validation, dropped_val = encoder(val_records, text, tokenizer, path=val_path, kept=val_kept, **common)
    if not train:
        raise BadDataset(f"all {dropped_train} training records are longer than max_length={config.max_length} "
                         "tokens; raise max_length or shorten the records.", file=config.data.train,
                         field="max_length")
    records = len(train)
    if config.packing:
        train = pack(train, config.max_length)
    return Dataset(train=train, validation=validation, summary={
        "trainRecords": records,
        "validationRecords": len(validation),
        "droppedTooLong": dropped_train + dropped_val,
        "trainSequences": len(train),
    }, validation_records=val_kept, validation_path=str(val_path))


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, S), right-padded with the pad id
    labels: torch.Tensor  # (B, S), IGNORE on pad and on non-target tokens
    attention_mask: torch.Tensor  # (B, S), 1 on tokens, 0 on padding
    segment_ids: Optional[torch.Tensor]  # (B, S) record index within the row, -1 on padding; packed rows only
    position_ids: Optional[torch.Tensor]  # (B, S) restarting at 0 for every record; packed rows only
    records: int

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def target_tokens(self) -> int:
        # The model's logits at t predict token t+1, so the loss uses labels[:, 1:].
        return int((self.labels[:, 1:] != IGNORE).sum())

    def model_inputs(self, device: torch.device, mask_dtype: torch.dtype) -> Dict[str, torch.Tensor]:
        inputs = {"input_ids": self.input_ids.to(device)}
        if self.segment_ids is None:
            inputs["attention_mask"] = self.attention_mask.to(device)
        else:
            inputs["attention_mask"] = block_causal_mask(self.segment_ids.to(device), mask_dtype)
            inputs["position_ids"] = self.position_ids.to(device)
        return inputs


def collate(rows: Seq[Sequence], pad_id: int, *, packed: bool) -> Batch:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long) if packed else None
    positions = torch.zeros((len(rows), width), dtype=torch.long) if packed else None
    for i, row in enumerate(rows):
        n = len(row)
        input_ids[i, :n] = torch.tensor(row.input_ids)
        labels[i, :n] = torch.tensor(row.labels)
        attention[i, :n] = 1
        if packed:
            start = 0
            for k, length in enumerate(row.lengths):
                segments[i, start:start + length] = k
                positions[i, start:start + length] = torch.arange(length)
                start += length
            positions[i, n:] = torch.arange(width - n)  # padding: its own segment, positions irrelevant
    return Batch(input_ids, labels, attention, segments, positions, sum(len(r.lengths) for r in rows))
