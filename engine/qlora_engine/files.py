"""Atomic writes (temp file beside the target + os.replace): a crash never leaves a half-written file."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml


def finite(value: Any) -> Any:
    """NaN/inf -> None, recursively: JSON has no such numbers and JSON.parse rejects Python's NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_dir(tmp: Path, final: Path) -> None:
    """Put the complete folder `tmp` at `final` (same parent): an existing `final` is renamed aside first and
    removed after, so `final` is always either the old folder or the new one, never a mix."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".tmp-old-{final.name}-", dir=final.parent))
        os.replace(final, old / final.name)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(finite(value), indent=2) + "\n")


def write_yaml(path: Path, value: Any) -> None:
    write_text(path, yaml.safe_dump(value, sort_keys=False, allow_unicode=True))


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(finite(row)) + "\n" for row in rows))


def append_jsonl(path: Path, row: dict) -> None:
    # Appends of one short line are not atomic in theory, but a torn last line is dropped by read_jsonl_lenient.
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(finite(row)) + "\n")


def read_jsonl_lenient(path: Path) -> list:
    """Rows of a JSONL file we wrote; a torn (unparseable) line from a crash is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
