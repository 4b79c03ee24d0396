"""JSON-RPC framing and dispatch, in memory."""
from __future__ import annotations

import io
import json

from qlora_engine.errors import BadDataset
from qlora_engine.files import finite
from qlora_engine.rpc import Connection, frame, read_message


def frames(*messages) -> io.BytesIO:
    data = b""
    for m in messages:
        body = m if isinstance(m, bytes) else json.dumps(m).encode()
        data += b"Content-Length: %d\r\n\r\n" % len(body) + body
    return io.BytesIO(data)


def replies(out: io.BytesIO):
    stream = io.BytesIO(out.getvalue())
    result = []
    while True:
        body = read_message(stream)
        if body is None:
            return result
        result.append(json.loads(body))


def serve(*messages, handlers=None, notifications=None):
    out = io.BytesIO()
    Connection(frames(*messages), out).serve(handlers or {}, notifications or {}, lambda: False)
    return replies(out)


def test_dispatch_and_errors():
    def fail(params):
        raise BadDataset("train.jsonl:3: bad", file="/d/train.jsonl", line=3)

    def crash(params):
        raise ZeroDivisionError("boom")

    seen = []
    out = serve(
        {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"x": "é"}},
        {"jsonrpc": "2.0", "id": 2, "method": "fail"},
        {"jsonrpc": "2.0", "id": 3, "method": "crash"},
        {"jsonrpc": "2.0", "id": 4, "method": "missing"},
        {"jsonrpc": "2.0", "method": "note", "params": 7},
        b"{not json",
        {"id": 5, "method": "echo"},
        handlers={"echo": lambda p: p, "fail": fail, "crash": crash},
        notifications={"note": seen.append})
    assert out[0] == {"jsonrpc": "2.0", "id": 1, "result": {"x": "é"}}
    assert out[1]["error"] == {"code": -32004, "message": "train.jsonl:3: bad",
                               "data": {"code": -32004, "message": "train.jsonl:3: bad", "remedy": BadDataset.REMEDY,
                                        "file": "/d/train.jsonl", "line": 3}}
    assert out[2]["error"]["code"] == -32603 and "ZeroDivisionError: boom" in out[2]["error"]["message"]
    assert out[3]["error"]["code"] == -32601
    assert seen == [7]  # notifications get no reply
    assert out[4]["id"] is None and out[4]["error"]["code"] == -32700
    assert out[5]["id"] == 5 and out[5]["error"]["code"] == -32600
    assert len(out) == 6


def test_utf8_length_is_in_bytes_and_nan_becomes_null():
    data = frame({"text": "résumé"})
    header, body = data.split(b"\r\n\r\n")
    assert int(header.split(b": ")[1]) == len(body)
    out = io.BytesIO()
    Connection(io.BytesIO(), out).notify("train/didProgress", {"loss": float("nan"), "n": [1.0, float("inf")]})
    assert json.loads(read_message(io.BytesIO(out.getvalue()))) == {
        "jsonrpc": "2.0", "method": "train/didProgress", "params": {"loss": None, "n": [1.0, None]}}
    assert finite({"a": (float("-inf"), 2)}) == {"a": [None, 2]}


def test_stops_at_end_of_stream_and_on_request():
    out = io.BytesIO()
    calls = []
    conn = Connection(frames({"jsonrpc": "2.0", "id": 1, "method": "stop"},
                             {"jsonrpc": "2.0", "id": 2, "method": "stop"}), out)
    conn.serve({"stop": lambda p: calls.append(p)}, {}, lambda: len(calls) >= 1)
    assert len(replies(out)) == 1


def test_cancel_request_sets_the_flag_of_the_request_running_and_only_its():
    """`$/cancelRequest` is read while a request runs (the reading thread), and reaches that request's flag."""
    import os
    import threading

    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb", buffering=0)
    out = io.BytesIO()
    conn = Connection(reader, out)
    running = threading.Event()

    def wait(params):
        running.set()
        return {"cancelled": conn.cancel_flag().wait(timeout=10)}

    def quick(params):
        return {"cancelled": conn.cancel_flag().is_set()}

    served = threading.Thread(target=conn.serve, args=({"wait": wait, "quick": quick}, {}, lambda: False))
    served.start()
    send = lambda m: writer.write(frames(m).getvalue())  # noqa: E731
    send({"jsonrpc": "2.0", "id": 1, "method": "wait"})
    send({"jsonrpc": "2.0", "id": 2, "method": "quick"})  # queued behind 1; its flag stays clear
    assert running.wait(timeout=10)
    send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 99}})  # no such request: ignored
    send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": [1]}})  # not an id: ignored
    send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}})
    send({"jsonrpc": "2.0", "id": "s", "method": "quick"})
    writer.close()
    served.join(timeout=10)
    assert [(r["id"], r["result"]) for r in replies(out)] == [
        (1, {"cancelled": True}), (2, {"cancelled": False}), ("s", {"cancelled": False})]  # no reply to the cancel
