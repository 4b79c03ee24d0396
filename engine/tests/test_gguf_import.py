"""GGUF import: the folder is complete or absent, an intact import is never redone, a damaged one is."""
from __future__ import annotations

import pytest

from qlora_engine.errors import InvalidParams, WriteFailed
from qlora_engine.gguf_import import MANIFEST, import_gguf

pytest.importorskip("gguf")
from tiny_gguf import write  # noqa: E402  (engine/tests is on sys.path under pytest)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write(tmp_path_factory.mktemp("gguf") / "good.gguf")


def test_a_damaged_import_is_redone_and_an_intact_one_is_not(good, tmp_path):
    out = tmp_path / "model"
    first = import_gguf(good, out)
    assert first["skipped"] is False and (out / MANIFEST).exists()
    assert import_gguf(good, out)["skipped"] is True
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated copy, as after a full disk
    again = import_gguf(good, out)
    assert again["skipped"] is False
    assert weights.stat().st_size == first["files"]["model.safetensors"]


def test_a_folder_holding_other_files_is_refused(good, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidParams, match="no import wrote"):
        import_gguf(good, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_failed_write_leaves_no_folder_and_no_staging(good, tmp_path, monkeypatch):
    from transformers import PreTrainedTokenizerBase

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", disk_full)
    out = tmp_path / "model"
    with pytest.raises(WriteFailed, match="No space left"):
        import_gguf(good, out)
    assert list(tmp_path.iterdir()) == []
