"""Writing a model folder (weights, config, tokenizer, a manifest) so that it is never seen half-written.

`model/import` and `model/export` both save into a staging folder beside the destination and rename it into place;
the manifest records every file's size.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict

from .errors import WriteFailed


def write_model_folder(out: Path, model: Any, tokenizer: Any, manifest_name: str, manifest: Dict[str, Any], *,
                       staging_label: str, what: str) -> Dict[str, Any]:
    """Saves `model` (safetensors) and `tokenizer` with `manifest` + {"files": sizes} as `manifest_name` into
    `.{out.name}.{staging_label}-{pid}` beside `out`, then swaps it in (an existing `out` is replaced only then).
    Returns the manifest as written; WriteFailed names `what` and `out`, and nothing is left behind."""
    staging = out.parent / f".{out.name}.{staging_label}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        files = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}
        written = {**manifest, "files": files}
        (staging / manifest_name).write_text(json.dumps(written, indent=2) + "\n", "utf-8")
        _swap_in(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise WriteFailed(f"could not write {what} to {out}: {exc.strerror or exc}", file=str(out)) from None
    return written


def _swap_in(staging: Path, out: Path) -> None:
    """Replaces `out` (absent, or an earlier folder) with `staging`; never leaves `out` half-written."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)
