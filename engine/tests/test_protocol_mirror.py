"""protocol.py must mirror protocol/engine.ts: the same method names (TS PascalCase -> Python UPPER_SNAKE) and
the same error codes."""
from __future__ import annotations

import re

from conftest import REPO

from qlora_engine import protocol

ENGINE_TS = (REPO / "protocol" / "engine.ts").read_text(encoding="utf-8")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def ts_methods() -> dict:
    return {name: value for name, value in re.findall(r"^export const (\w+) = '([^']+)';", ENGINE_TS, re.M)}


def ts_error_codes() -> dict:
    body = re.search(r"export const ErrorCodes = \{(.*?)\}", ENGINE_TS, re.S).group(1)
    return {name: int(value) for name, value in re.findall(r"(\w+):\s*(-?\d+)", body)}


def test_parser_sees_the_file():
    assert len(ts_methods()) >= 11 and len(ts_error_codes()) >= 15


def test_method_names_match():
    ts = {snake(name): value for name, value in ts_methods().items()}
    # Every string constant of protocol.py is a method name, except EXIT (LSP's notification, not in engine.ts).
    py = {name: value for name, value in vars(protocol).items()
          if name.isupper() and isinstance(value, str) and name != "EXIT"}
    assert py == ts


def test_engine_methods_list_matches():
    listed = re.search(r"export const EngineMethods = \[(.*?)\]", ENGINE_TS, re.S).group(1)
    names = re.findall(r"(\w+),", listed)
    methods = ts_methods()
    assert list(protocol.ENGINE_METHODS) == [methods[n] for n in names]


def test_error_codes_match():
    assert protocol.ERROR_CODES == ts_error_codes()


def test_bad_input_codes_match():
    body = re.search(r"export const BadInputCodes[^=]*= \[(.*?)\]", ENGINE_TS, re.S).group(1)
    names = re.findall(r"ErrorCodes\.(\w+)", body)
    assert list(protocol.BAD_INPUT_CODES) == [protocol.ERROR_CODES[n] for n in names]


def test_stages_match():
    stages = re.search(r"export type Stage = (.*?);", ENGINE_TS, re.S).group(1)
    assert tuple(re.findall(r"'([^']+)'", stages)) == protocol.STAGES


RUN_FOLDER_TS = (REPO / "protocol" / "run-folder.ts").read_text(encoding="utf-8")


def ts_interface_fields(name: str) -> tuple:
    body = re.search(rf"export interface {name} \{{(.*?)\n\}}", RUN_FOLDER_TS, re.S).group(1)
    return tuple(re.findall(r"^  (\w+)\??:", body, re.M))


def test_run_folder_names_match():
    body = re.search(r"export const RunFolder = \{(.*?)\}", RUN_FOLDER_TS, re.S).group(1)
    assert dict(re.findall(r"(\w+): '([^']+)'", body)) == protocol.RUN_FOLDER


def test_run_folder_record_and_metrics_keys_match():
    assert ts_interface_fields("RunRecord") == protocol.RUN_RECORD_KEYS
    assert ts_interface_fields("TrainLine") == protocol.TRAIN_LINE_KEYS
    assert ts_interface_fields("EvalLine") == protocol.EVAL_LINE_KEYS
