"""JSON-RPC 2.0 over byte streams with LSP's framing (`Content-Length: N\\r\\n\\r\\n` + N bytes of UTF-8 JSON).

A thread reads the stream; requests and notifications are dispatched one at a time, in order, on the thread that
called `serve`; long work (training) runs elsewhere and talks back through `notify`, which any thread may call: one
lock keeps frames from interleaving. The one message acted on as soon as it is read is LSP's `$/cancelRequest`: it
sets the cancel flag of the request it names (queued or running), which a long request (a download) checks and then
answers RequestCancelled; a request that does not check it answers as usual.
Errors: an EngineError becomes {code, message, data: {code, message, file?, line?, field?}}; an unknown method
-32601; anything unexpected -32603 with the exception text (traceback to stderr).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import traceback
from typing import Any, BinaryIO, Callable, Dict, Optional, Tuple

from .errors import EngineError
from .files import finite
from .protocol import CANCEL_REQUEST, ERROR_CODES

log = logging.getLogger(__name__)

Handler = Callable[[Any], Any]


class FramingError(Exception):
    """The stream is not LSP-framed; the connection cannot continue."""


def read_message(stream: BinaryIO) -> Optional[bytes]:
    """One frame's body, or None at end of stream."""
    length: Optional[int] = None
    while True:
        line = stream.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if length is None:
                raise FramingError("frame without Content-Length header")
            break
        name, _, value = line.decode("ascii", errors="replace").partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise FramingError(f"bad Content-Length: {value.strip()!r}") from None
    body = stream.read(length)
    if len(body) < length:
        return None
    return body


def frame(message: Dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
    return b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n\r\n" + body


def _id_key(value: Any) -> Any:
    """A request id usable as a key (JSON-RPC ids are numbers or strings), else None."""
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def _request_key(message: Any) -> Any:
    """The id of a request (a message with a method and an id), as a key; None for anything else."""
    if isinstance(message, dict) and isinstance(message.get("method"), str) and "id" in message:
        return _id_key(message["id"])
    return None


class Connection:
    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = threading.Lock()
        self._closed = False
        self._cancels: Dict[Any, threading.Event] = {}  # request id -> its cancel flag, from read to reply
        self._current = threading.Event()  # the flag of the request being dispatched

    def send(self, message: Dict[str, Any]) -> None:
        try:
            data = frame(message)
        except ValueError:  # NaN/inf somewhere (a diverged loss): JSON has no such numbers, send null
            data = frame(finite(message))
        with self._lock:
            if self._closed:
                return
            try:
                self._writer.write(data)
                self._writer.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._closed = True  # the server went away; the reader will see end of stream

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def _reply(self, msg_id: Any, result: Any = None, error: Optional[Dict[str, Any]] = None) -> None:
        message: Dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id}
        if error is None:
            message["result"] = result
        else:
            message["error"] = error
        self.send(message)

    def cancel_flag(self) -> threading.Event:
        """The cancel flag of the request being dispatched: set when `$/cancelRequest` names it."""
        return self._current

    def serve(self, handlers: Dict[str, Handler], notifications: Dict[str, Handler],
              should_stop: Callable[[], bool]) -> None:
        """Dispatch what the reading thread receives until end of stream or should_stop() turns true after a message.
        The reading thread is a daemon blocked on the stream: the reader must not be sys.stdin.buffer, whose lock
        that thread holds when the interpreter finalizes it (a fatal error); __main__ passes a private duplicate."""
        inbox: "queue.Queue[Optional[Tuple[Any, Optional[Exception]]]]" = queue.Queue()
        threading.Thread(target=self._read, args=(inbox,), name="rpc-reader", daemon=True).start()
        while not should_stop():
            item = inbox.get()
            if item is None:
                return
            message, bad = item
            if bad is not None:
                self._reply(None, error={"code": ERROR_CODES["ParseError"], "message": f"parse error: {bad}"})
                continue
            key = _request_key(message)
            self._current = (self._cancels.get(key) if key is not None else None) or threading.Event()
            try:
                self._dispatch(message, handlers, notifications)
            finally:
                if key is not None:
                    self._cancels.pop(key, None)

    def _read(self, inbox: "queue.Queue[Optional[Tuple[Any, Optional[Exception]]]]") -> None:
        """Frames -> inbox, in order (None at the end); a `$/cancelRequest` sets its request's flag at once."""
        try:
            while True:
                try:
                    body = read_message(self._reader)
                except FramingError as exc:
                    log.error("protocol error, closing: %s", exc)
                    return
                if body is None:
                    return
                try:
                    message = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    inbox.put((None, exc))
                    continue
                if isinstance(message, dict) and message.get("method") == CANCEL_REQUEST and "id" not in message:
                    params = message.get("params")
                    key = _id_key(params.get("id")) if isinstance(params, dict) else None
                    flag = self._cancels.get(key) if key is not None else None
                    if flag is not None:
                        flag.set()
                    continue
                key = _request_key(message)
                if key is not None:
                    self._cancels.setdefault(key, threading.Event())
                inbox.put((message, None))
        except Exception:  # a bug guard: the connection ends as at end of stream, saying why
            log.error("reading the stream failed:\n%s", traceback.format_exc())
        finally:
            inbox.put(None)

    def _dispatch(self, message: Any, handlers: Dict[str, Handler], notifications: Dict[str, Handler]) -> None:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not isinstance(
                message.get("method"), str):
            msg_id = message.get("id") if isinstance(message, dict) else None
            if isinstance(message, dict) and "method" not in message and ("result" in message or "error" in message):
                return  # a response to something we never send; ignore
            self._reply(msg_id, error={"code": ERROR_CODES["InvalidRequest"], "message": "invalid JSON-RPC request"})
            return
        method, params = message["method"], message.get("params")
        if "id" not in message:  # notification: no reply, errors only logged
            handler = notifications.get(method)
            if handler is not None:
                try:
                    handler(params)
                except Exception:
                    log.error("notification %s failed:\n%s", method, traceback.format_exc())
            return
        msg_id = message["id"]
        handler = handlers.get(method)
        if handler is None:
            self._reply(msg_id, error={"code": ERROR_CODES["MethodNotFound"], "message": f"unknown method {method}"})
            return
        try:
            result = handler(params)
        except EngineError as exc:
            self._reply(msg_id, error={"code": exc.code, "message": exc.message, "data": exc.to_data()})
        except Exception as exc:
            log.error("request %s failed:\n%s", method, traceback.format_exc())
            self._reply(msg_id, error={"code": ERROR_CODES["InternalError"],
                                       "message": f"{type(exc).__name__}: {exc}"})
        else:
            self._reply(msg_id, result)
