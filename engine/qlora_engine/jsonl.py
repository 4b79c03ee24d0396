"""JSONL files of records: one JSON object per line, read with 1-based line numbers so every error says file:line
(and column for bad JSON). Shared by the training data (data.py) and format detection (chat.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from .errors import BadDataset


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line in the file
    fields: Dict[str, Any]


def read_jsonl(path: str | Path, *, field: str = "data.train") -> List[Record]:
    """Parse a JSONL file: one JSON object per line; blank lines are skipped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadDataset(f"data file not found: {path}. Check `{field}` in the config.", file=str(path),
                         field=field) from None
    except OSError as exc:
        raise BadDataset(f"cannot read {path}: {exc}", file=str(path), field=field) from None
    records: List[Record] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadDataset(f"{path.name}:{number}: not UTF-8 (byte {exc.start + 1}); save the file as UTF-8.",
                             file=str(path), line=number) from None
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadDataset(f"{path.name}:{number}:{exc.colno}: invalid JSON: {exc.msg}. Each line must be one "
                             "complete JSON object.", file=str(path), line=number) from None
        except RecursionError:
            raise BadDataset(f"{path.name}:{number}: JSON nested too deeply to read; a record is one flat-ish "
                             "object of fields.", file=str(path), line=number) from None
        except ValueError as exc:  # e.g. an integer beyond Python's digit limit
            raise BadDataset(f"{path.name}:{number}: unreadable JSON value: {exc}.", file=str(path),
                             line=number) from None
        if not isinstance(value, dict):
            raise BadDataset(f"{path.name}:{number}: expected a JSON object ({{\"field\": ...}}), got "
                             f"{type(value).__name__}.", file=str(path), line=number)
        records.append(Record(number, value))
    if not records:
        raise BadDataset(f"{path.name} has no records; it needs one JSON object per line.", file=str(path),
                         field=field)
    return records
