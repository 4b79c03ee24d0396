"""Chat datasets (docs/chat-datasets.md): records in the OpenAI `messages`, ShareGPT or Alpaca shape become a list
of turns, rendered by the model's own chat template (or the config's `chat_template`) through transformers'
`apply_chat_template`, with the assistant's turns as the trained spans.

server/src/templates/chat*.ts implements the same rules for the editor; test/lsp/chat-parity.test.ts holds the two
byte-for-byte equal on the samples.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .config import CHAT_FORMATS, Config
from .errors import BadConfig, BadDataset, BadTemplate
from .jsonl import read_jsonl

Turn = Dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}

# The turn list's key, a turn's role and content keys, and role names -> roles, per format.
SHAPES = {
    "messages": ("messages", "role", "content",
                 {"system": "system", "user": "user", "assistant": "assistant"}),
    "sharegpt": ("conversations", "from", "value",
                 {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}),
}
PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def detect_format(fields: Dict[str, Any]) -> Optional[str]:
    """The chat format a record's keys name, or None."""
    if "messages" in fields:
        return "messages"
    if "conversations" in fields:
        return "sharegpt"
    if "instruction" in fields and "output" in fields:
        return "alpaca"
    return None


def _first_fields(path: str) -> Optional[Dict[str, Any]]:
    """The first record of a JSONL file, or None when it cannot be read (read_jsonl then says why)."""
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    value = json.loads(line.decode("utf-8"))
                    return value if isinstance(value, dict) else None
    except (OSError, ValueError, RecursionError):
        return None
    return None


def resolve_format(config: Config) -> Config:
    """The config with data.format "auto" replaced by what it stands for: template when a prompt template is set,
    else the chat format of data.train's first record."""
    fmt = config.data.format
    if fmt == "auto" and config.template is not None:
        fmt = "template"
    elif fmt == "auto":
        fields = _first_fields(config.data.train)
        if fields is None:
            read_jsonl(config.data.train, field="data.train")  # raises the file's problem, naming the line
            raise BadDataset(f"{Path(config.data.train).name} has no records.", file=config.data.train,
                             field="data.train")
        fmt = detect_format(fields)
        if fmt is None:
            has = ", ".join(sorted(fields)) or "no fields"
            raise BadConfig(f"cannot tell the format of {Path(config.data.train).name}: its first record has {has}. "
                            "Give a prompt template (template:) or name a chat format in data.format (messages, "
                            "sharegpt, alpaca).", field="data.format")
    if fmt != "template" and config.eval.references is not None:
        raise BadConfig("eval.references names record fields for prompt templates; chat records are scored against "
                        "their last assistant turn. Remove eval.references.", field="eval.references")
    return dataclasses.replace(config, data=dataclasses.replace(config.data, format=fmt))


def turn_problems(fields: Dict[str, Any], fmt: str, *, prompt_only: bool = False) -> Tuple[List[Turn],
                                                                                             List[Tuple[str, str]]]:
    """(turns, [(field, problem)]): the record's turns, valid when there are no problems. prompt_only (a prompt
    for generation): the conversation may end on a user turn, an Alpaca record may lack its output."""
    if fmt == "alpaca":
        return _alpaca(fields, prompt_only)
    key, role_key, content_key, roles = SHAPES[fmt]
    raw = fields.get(key)
    if not isinstance(raw, list) or not raw:
        state = "missing" if key not in fields else "empty" if raw == [] else f"a {type(raw).__name__}"
        return [], [(key, f"must be a non-empty list of turns, but is {state}")]
    turns: List[Turn] = []
    problems: List[Tuple[str, str]] = []
    for index, turn in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            problems.append((where, f"must be an object with {role_key} and {content_key}"))
            continue
        name = turn.get(role_key)
        if name not in roles:
            known = ", ".join(roles)
            problems.append((f"{where}.{role_key}", f"unknown role {json.dumps(name)} (expected {known})"))
            continue
        content = turn.get(content_key)
        if not isinstance(content, str):
            state = "missing" if content_key not in turn else f"a {type(content).__name__}, not a string"
            problems.append((f"{where}.{content_key}", f"is {state}"))
            continue
        if not content.strip():
            problems.append((f"{where}.{content_key}", "empty turn"))
            continue
        turns.append({"role": roles[name], "content": content})
    if problems:
        return [], problems
    if fmt == "sharegpt":
        system = fields.get("system")
        if isinstance(system, str) and system.strip() and turns[0]["role"] != "system":
            turns.insert(0, {"role": "system", "content": system})
        elif system is not None and not isinstance(system, str):
            return [], [("system", "must be a string")]
    problems = _order(turns, key, offset=len(turns) - len(raw), prompt_only=prompt_only)
    return (turns, []) if not problems else ([], problems)


def _order(turns: List[Turn], key: str, *, offset: int, prompt_only: bool) -> List[Tuple[str, str]]:
    """At most one system turn, first; then user and assistant alternate from user; the assistant ends."""
    expected = "user"
    for index, turn in enumerate(turns):
        where = f"{key}[{index - offset}]" if index >= offset else "system"
        role = turn["role"]
        if role == "system":
            if index != 0:
                return [(where, "turn out of order: a system turn may only come first")]
            continue
        if role != expected:
            after = turns[index - 1]["role"] if index else None
            what = f"{role} after {after}" if after and after != "system" else f"the conversation starts with {role}"
            return [(where, f"turn out of order: {what} (user and assistant turns alternate, user first)")]
        expected = "assistant" if role == "user" else "user"
    if turns[-1]["role"] == "system":
        return [(key, "has only a system turn")]
    if turns[-1]["role"] != "assistant" and not prompt_only:
        return [(f"{key}[{len(turns) - 1 - offset}]", "ends without an assistant turn: nothing to train on")]
    return []


def _alpaca(fields: Dict[str, Any], prompt_only: bool) -> Tuple[List[Turn], List[Tuple[str, str]]]:
    problems: List[Tuple[str, str]] = []
    for name, required in (("instruction", True), ("output", not prompt_only), ("input", False), ("system", False)):
        value = fields.get(name)
        if value is None and name not in fields and not required:
            continue
        if not isinstance(value, str):
            state = "missing" if name not in fields else f"a {type(value).__name__}, not a string"
            problems.append((name, f"is {state}"))
        elif required and not value.strip():
            problems.append((name, "empty turn"))
    if problems:
        return [], problems
    system, text, extra = fields.get("system"), fields["instruction"], fields.get("input")
    turns: List[Turn] = [{"role": "system", "content": system}] if system and system.strip() else []
    turns.append({"role": "user", "content": f"{text}\n{extra}" if extra else text})
    if isinstance(fields.get("output"), str) and fields["output"].strip():
        turns.append({"role": "assistant", "content": fields["output"]})
    return turns, []


def conversation(fields: Dict[str, Any], fmt: str, *, file: Optional[str] = None, line: Optional[int] = None,
                 prompt_only: bool = False) -> List[Turn]:
    """The record's turns; BadDataset naming the file, line and field of the first problem."""
    turns, problems = turn_problems(fields, fmt, prompt_only=prompt_only)
    if problems:
        field, problem = problems[0]
        where = f"{Path(file).name}:{line}: " if file else f"line {line}: " if line else ""
        raise BadDataset(f"{where}{field}: {problem}.", file=file, line=line, field=field)
    return turns


@dataclass
class ChatTemplate:
    source: str
    origin: str  # the file it came from, for messages
    tokenizer: Any
    stop: Tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return Path(self.origin).name

    def render(self, turns: Sequence[Turn], add_generation_prompt: bool) -> str:
        import jinja2
        try:
            return self.tokenizer.apply_chat_template(list(turns), chat_template=self.source, tokenize=False,
                                                      add_generation_prompt=add_generation_prompt)
        except jinja2.TemplateError as exc:
            raise BadTemplate(f"the chat template {self.origin} does not render this conversation: {exc}",
                              file=self.origin, field="chat_template") from None

    def segments(self, turns: Sequence[Turn]) -> List[Tuple[str, bool]]:
        """The whole conversation's text cut into (text, trained) pieces: each assistant turn's content and
        end-of-turn marker trained, the rest not (docs/chat-datasets.md)."""
        full = self.render(turns, False)
        out: List[Tuple[str, bool]] = []
        at = 0
        for index, turn in enumerate(turns):
            if turn["role"] != "assistant":
                continue
            before = self.render(turns[:index], True)
            through = self.render(turns[:index + 1], False)
            start, end = len(before), len(through.rstrip())
            if not (through.startswith(before) and full.startswith(through)) or start < at:
                raise BadTemplate(f"the chat template {self.origin} does not render a conversation as a prefix of "
                                  "its continuation (it rewrites earlier turns), so the assistant's turns cannot be "
                                  "located for the loss. Give a chat_template that renders turns in order.",
                                  file=self.origin, field="chat_template")
            if end <= start:
                raise BadTemplate(f"the chat template {self.origin} renders no text for an assistant turn.",
                                  file=self.origin, field="chat_template")
            if start > at:
                out.append((full[at:start], False))
            out.append((full[start:end], True))
            at = end
        if at < len(full):
            out.append((full[at:], False))
        return out

    def prompt(self, turns: Sequence[Turn]) -> str:
        """What the model sees before it writes the final assistant turn (or the next one, when the turns end with
        a user turn: a prompt for generation)."""
        return self.render(turns[:-1] if turns[-1]["role"] == "assistant" else turns, True)


def reference(turns: Sequence[Turn]) -> str:
    """The final assistant turn's content: what a generated answer is scored against."""
    return next(t["content"] for t in reversed(turns) if t["role"] == "assistant")


def _end_marker(template: ChatTemplate) -> Tuple[str, ...]:
    """The text the template writes after an assistant turn's content (<|im_end|> in ChatML): a stop string."""
    try:
        before, through = template.render(PROBE[:1], True), template.render(PROBE, False)
    except BadTemplate:
        return ()
    content = PROBE[1]["content"]
    if not (through.startswith(before) and through[len(before):].startswith(content)):
        return ()
    marker = through[len(before) + len(content):].strip()
    return (marker,) if marker else ()


def load_chat_template(path: Optional[str], tokenizer: Any, *, model: str = "the model") -> ChatTemplate:
    """The config's chat template file, else the model's own (what its tokenizer loaded from chat_template.jinja
    or tokenizer_config.json); BadConfig on chat_template when there is none."""
    if path is not None:
        try:
            source, origin = Path(path).read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise BadConfig(f"chat template file not found: {path}. Check chat_template in the config.",
                            file=str(path), field="chat_template") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadConfig(f"cannot read the chat template {path}: {exc}", file=str(path),
                            field="chat_template") from None
    else:
        source = getattr(tokenizer, "chat_template", None)
        if isinstance(source, dict):  # several named templates
            source = source.get("default")
        if not source:
            raise BadConfig(f"the model {model} has no chat template (no chat_template.jinja, no chat_template in "
                            "tokenizer_config.json): set chat_template: in the config to a Jinja file, e.g. "
                            "samples/chat/chatml.jinja.", field="chat_template")
        origin = str(Path(model) / "chat_template.jinja") if Path(model).is_dir() else f"{model} (chat template)"
    import jinja2
    try:
        jinja2.Environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise BadTemplate(f"the chat template {origin}: Jinja syntax error on line {exc.lineno}: {exc.message}",
                          file=origin if path is not None else None, line=exc.lineno, field="chat_template") from None
    template = ChatTemplate(source=source, origin=origin, tokenizer=tokenizer)
    template.stop = _end_marker(template)
    return template


@dataclass
class ChatData:
    """A chat format and its template: what data, ROUGE and generate need from chat records."""
    format: str
    template: ChatTemplate

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def stop(self) -> Tuple[str, ...]:
        return self.template.stop

    def turns(self, fields: Dict[str, Any], *, file: Optional[str] = None, line: Optional[int] = None,
              prompt_only: bool = False) -> List[Turn]:
        return conversation(fields, self.format, file=file, line=line, prompt_only=prompt_only)

    def render_prompt(self, fields: Dict[str, Any], *, file: Optional[str] = None,
                      line: Optional[int] = None) -> str:
        return self.template.prompt(self.turns(fields, file=file, line=line, prompt_only=True))


def load_chat(config: Config, tokenizer: Any) -> ChatData:
    """The chat side of a config whose data.format resolve_format has made a chat format."""
    assert config.data.format in CHAT_FORMATS, config.data.format
    return ChatData(config.data.format, load_chat_template(config.chat_template, tokenizer, model=config.model))
