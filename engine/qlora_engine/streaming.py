"""Text as it is generated: a streamer for transformers' `generate` that reports each row's text so far.

transformers calls `put` with the prompt ids first, then with each step's new token of every row, and `end` when
generation stops. A row is done at its EOS (what follows is padding) or once its text holds a stop string; its text
is decoded from its own new tokens and cut at the first stop string, as the final completion is. Updates are sent
(and the row decoded) at most every `interval` seconds per row (the first token at once, so the editor shows text as
soon as there is any), and a last one with done=True for every row at its EOS, its stop string or the end.
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """The text before the first stop string (all of it when none occurs)."""
    cuts = [text.find(s) for s in stops if s in text]
    return text[:min(cuts)] if cuts else text

# (row, text so far, done)
Emit = Callable[[int, str, bool], None]


class RowStreamer:
    def __init__(self, tokenizer: Any, rows: int, eos: Optional[int], stops: Sequence[str], emit: Emit,
                 interval: float = 0.05) -> None:
        self.tokenizer, self.eos, self.stops, self.emit, self.interval = tokenizer, eos, stops, emit, interval
        self.ids: List[List[int]] = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.sent = [""] * rows
        self.last = [0.0] * rows
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompts
            self._prompt_seen = True
            return
        tokens = value.reshape(len(self.ids), -1)[:, -1].tolist()
        now = time.perf_counter()
        for row, token in enumerate(tokens):
            if self.done[row]:
                continue
            if token == self.eos:
                self.done[row] = True
                self._send(row, True)
                continue
            self.ids[row].append(int(token))
            if self.sent[row] and now - self.last[row] < self.interval:
                continue  # decode only when an update is due: decoding every token would cost O(n^2) per row
            full = self.tokenizer.decode(self.ids[row], skip_special_tokens=True)
            text = cut_at_stop(full, self.stops)
            if text != full:  # a stop string is complete: the row is done, as the final completion will say
                self.done[row] = True
                self._send(row, True, text)
            else:
                self._send(row, False, text, now)

    def end(self) -> None:
        for row in range(len(self.ids)):
            if not self.done[row]:
                self.done[row] = True
                self._send(row, True)

    def _text(self, row: int) -> str:
        return cut_at_stop(self.tokenizer.decode(self.ids[row], skip_special_tokens=True), self.stops)

    def _send(self, row: int, done: bool, text: Optional[str] = None, now: Optional[float] = None) -> None:
        text = self._text(row) if text is None else text
        if not done and text == self.sent[row]:
            return
        self.sent[row] = text
        self.last[row] = time.perf_counter() if now is None else now
        self.emit(row, text, done)
