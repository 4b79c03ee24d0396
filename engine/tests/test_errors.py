"""Every bad input fails in validate(), before anything is written, with a code and a location to act on."""
from __future__ import annotations

import pytest
import torch

from qlora_engine.errors import EngineError
from qlora_engine.protocol import ERROR_CODES
from qlora_engine.recipe import Recipe


def case_missing_data_file(ws):
    path = ws.root / "missing.jsonl"
    return ws.config(data={"train": str(path)}), "BadDataset", {"file": str(path), "field": "data.train"}


def case_malformed_jsonl_line(ws):
    lines = ws.train.read_text().splitlines()
    lines[4] = lines[4][:-5]  # cut the closing quote and brace off line 5
    ws.train.write_text("\n".join(lines) + "\n")
    return ws.config(), "BadDataset", {"file": str(ws.train), "line": 5}


def case_unknown_template_variable(ws):
    ws.template.write_text('prompt: "{{ dialogue }}\\n"\nresponse: "{{ summry }}"\n')
    return ws.config(), "BadTemplate", {"file": str(ws.train), "line": 1, "field": "summry"}


def case_field_missing_in_one_record(ws):
    lines = ws.train.read_text().splitlines()
    lines[6] = '{"dialogue": "x", "topic": "y"}'
    ws.train.write_text("\n".join(lines) + "\n")
    return ws.config(), "BadDataset", {"file": str(ws.train), "line": 7, "field": "summary"}


def case_wrong_target_module(ws):
    return (ws.config(lora={"target_modules": ["q_proj", "o_proj"]}), "BadConfig",
            {"field": "lora.target_modules",
             "message_has": ["'o_proj'", "Valid names: dense, fc1, fc2, k_proj, lm_head, q_proj, v_proj."]})


def case_nonexistent_model_folder(ws):
    path = ws.root / "models" / "nope"
    return ws.config(model=str(path)), "ModelNotFound", {"file": str(path), "field": "model"}


def case_folder_without_config(ws):
    (ws.root / "empty-model").mkdir()
    return ws.config(model=str(ws.root / "empty-model")), "ModelNotFound", {"field": "model",
                                                                           "message_has": ["config.json"]}


def case_model_needing_its_own_code(ws):
    # A model whose class exists only in its own Python: refused by name, and its code never runs.
    model = ws.root / "code-only"
    model.mkdir()
    marker = ws.root / "MARKER"
    (model / "config.json").write_text('{"model_type": "evil-arch", "auto_map": {"AutoConfig": "evil.EvilConfig"}}')
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    return ws.config(model=str(model)), "ModelNotFound", {"field": "trust_remote_code", "message_has": ["own Python code"],
                                                          "absent": marker}


def case_hub_id_not_cached(ws):
    return (ws.config(model="someone/not-downloaded-model"), "ModelNotFound",
            {"field": "model", "message_has": ["HF_HUB_OFFLINE=1", "not in the local"]})


def case_4bit_on_cpu(ws):
    return ws.config(quantization="nf4"), "CudaUnavailable", {"field": "quantization",
                                                               "message_has": ["quantization: none"]}


def case_paged_optimizer_on_cpu(ws):
    return ws.config(train={"optimizer": "paged_adamw_8bit"}), "BadConfig", {"field": "train.optimizer"}


def case_bad_config_value(ws):
    return ws.config(train={"micro_batch_size": 0}), "BadConfig", {"field": "train.micro_batch_size"}


def case_all_records_too_long(ws):
    return ws.config(max_length=16), "BadDataset", {"field": "max_length"}


CASES = [case_missing_data_file, case_malformed_jsonl_line, case_unknown_template_variable,
         case_field_missing_in_one_record, case_wrong_target_module, case_nonexistent_model_folder,
         case_folder_without_config, case_model_needing_its_own_code, case_hub_id_not_cached, case_4bit_on_cpu, case_paged_optimizer_on_cpu,
         case_bad_config_value, case_all_records_too_long]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input(ws, case):
    if case in (case_4bit_on_cpu, case_paged_optimizer_on_cpu) and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    config, kind, where = case(ws)
    run_dir = ws.runs / "r"
    for call in (lambda: Recipe(config, run_dir).validate(), lambda: Recipe(config, run_dir).run()):
        with pytest.raises(EngineError) as info:
            call()
        err = info.value
        assert err.code == ERROR_CODES[kind], err
        data = err.to_data()
        for key, value in where.items():
            if key == "message_has":
                for text in value:
                    assert text in err.message, err.message
            elif key == "absent":
                assert not value.exists(), f"{value} was written"
            else:
                assert data.get(key) == value, (key, data)
        assert not run_dir.exists()


def test_every_known_failure_says_what_to_do():
    """errors.py is the one home of the remedies the editor and the CLI show: every kind a user can meet has one,
    and it travels in the error's data."""
    from qlora_engine import errors
    known = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors._Known)
             and c is not errors._Known]
    assert len(known) >= 14
    for cls in known:
        if cls is errors.InvalidParams:  # a caller's protocol mistake, not the user's
            assert cls.REMEDY is None
            continue
        assert cls.REMEDY and cls.REMEDY.endswith("."), cls.__name__
        assert cls("what went wrong").to_data()["remedy"] == cls.REMEDY
