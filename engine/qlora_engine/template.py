"""The prompt template (.prompt.yaml): one file serves training, evaluation and inference.

    prompt: |            # Jinja; what the model sees
      Instruct: Summarize the following conversation.
      {{ dialogue }}
      Output:
    response: "{{ summary }}"   # Jinja; what it learns to write (EOS follows)
    stop: ["###"]        # optional: generated text is cut at the first of these

Rendered by a sandboxed, strict jinja2 environment (an undefined variable is an error, never ""), with
trailing newlines kept so Python renders byte for byte what @huggingface/jinja renders in the editor.
Errors carry the template file and the line *in that file* (not in the Jinja snippet).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple

import jinja2
import jinja2.meta
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import BadTemplate

PARTS = ("prompt", "response")

# What a record must hold for a variable, by how the template uses it (the linter's rule, in
# server/src/templates/jinja.ts's freeVariables; tests/test_template_fields.py and the lint parity test keep the
# two the same):
#   optional    only under `x is defined` / `x | default(...)` somewhere: may be absent
#   tested      tested for truth (`{% if x %}`, `a if x else b`): must be present, may be null or empty
#   structured  iterated or read through (`for i in x`, `x.key`, `x[0]`): present and not null, any JSON type
#   text        printed: a non-empty string (numbers and lists render differently in Python and TypeScript)
FIELD_RULES = ("optional", "tested", "structured", "text")


def field_rules(ast: jinja2.nodes.Template, free: FrozenSet[str]) -> Dict[str, str]:
    """How the template uses each free variable (see FIELD_RULES)."""
    from jinja2 import nodes

    guarded, tested, structured = set(), set(), set()
    depth = {"guard": 0, "test": 0}

    def root(node: Any) -> Optional[str]:
        if isinstance(node, nodes.Name):
            return node.name
        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            return root(node.node)
        return None

    def under(kind: str, node: Any) -> None:
        depth[kind] += 1
        visit(node)
        depth[kind] -= 1

    def visit(node: Any) -> None:
        if node is None:
            return
        if isinstance(node, list):
            for child in node:
                visit(child)
            return
        if isinstance(node, nodes.Name):
            if node.ctx == "load":
                if depth["guard"]:
                    guarded.add(node.name)
                if depth["test"]:
                    tested.add(node.name)
            return
        if isinstance(node, nodes.If):
            under("test", node.test)
            visit(node.body)
            visit(node.elif_)
            visit(node.else_)
            return
        if isinstance(node, nodes.CondExpr):
            under("test", node.test)
            visit(node.expr1)
            visit(node.expr2)
            return
        if isinstance(node, nodes.For):
            name = root(node.iter)
            if name:
                structured.add(name)
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
            name = root(node.node)
            if name:
                structured.add(name)
        elif isinstance(node, nodes.Filter) and node.name in ("default", "d"):
            under("guard", node.node)
            visit([node.args, node.kwargs, node.dyn_args, node.dyn_kwargs])
            return
        elif isinstance(node, nodes.Test) and node.name in ("defined", "undefined"):
            under("guard", node.node)
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(ast.body)
    rules = {}
    for name in free:
        rules[name] = ("optional" if name in guarded else "tested" if name in tested
                       else "structured" if name in structured else "text")
    return rules


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


@dataclass
class PromptTemplate:
    path: Path
    sources: Dict[str, str]
    stop: Tuple[str, ...]
    _compiled: Dict[str, jinja2.Template] = field(repr=False)
    _first_line: Dict[str, int] = field(repr=False)  # file line (1-based) of each part's first Jinja line
    _variables: Dict[str, FrozenSet[str]] = field(repr=False)
    _rules: Dict[str, Dict[str, str]] = field(repr=False, default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def variables(self, part: Optional[str] = None) -> FrozenSet[str]:
        """Record fields the template reads (of one part, or of both)."""
        if part is not None:
            return self._variables[part]
        return self._variables["prompt"] | self._variables["response"]

    def rules(self, names: Optional[FrozenSet[str]] = None) -> Dict[str, str]:
        """FIELD_RULES of each variable (of `names`, default all), as the prompt uses it, or the response for
        variables only the response reads (the linter's templateVariables does the same)."""
        out: Dict[str, str] = {}
        for part in PARTS:
            for name, rule in self._rules.get(part, {}).items():
                if (names is None or name in names) and name not in out:
                    out[name] = rule
        return out

    def variable_line(self, name: str) -> Optional[int]:
        """The file line where a variable is first used, for error messages."""
        pattern = re.compile(r"\b" + re.escape(name) + r"\b")
        for part in PARTS:
            for offset, text in enumerate(self.sources[part].splitlines()):
                if "{" in text and pattern.search(text):
                    return self._first_line[part] + offset
        return None

    def render_part(self, part: str, record: Mapping[str, Any]) -> str:
        try:
            return self._compiled[part].render(dict(record))
        except jinja2.TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise BadTemplate(f"{self.name}: {part}: {exc}", file=str(self.path),
                              line=None if line is None else self._first_line[part] + line - 1,
                              field=part) from None

    def render_prompt(self, record: Mapping[str, Any]) -> str:
        return self.render_part("prompt", record)

    def render(self, record: Mapping[str, Any]) -> Tuple[str, str]:
        """(prompt, response) for one record."""
        return self.render_part("prompt", record), self.render_part("response", record)


def _value_nodes(path: Path, text: str) -> Dict[str, yaml.Node]:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadTemplate(f"{path.name}: not valid YAML: {getattr(exc, 'problem', None) or exc}", file=str(path),
                          line=None if mark is None else mark.line + 1) from None
    if not isinstance(root, yaml.MappingNode):
        raise BadTemplate(f"{path.name} must be a YAML mapping with `prompt` and `response` keys.",
                          file=str(path), line=1)
    return {key.value: value for key, value in root.value if isinstance(key, yaml.ScalarNode)}


def load_template(path: str | Path) -> PromptTemplate:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadTemplate(f"template file not found: {path}. Check `template` in the config.", file=str(path),
                          field="template") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadTemplate(f"cannot read template {path}: {exc}", file=str(path), field="template") from None
    nodes = _value_nodes(path, text)
    data = yaml.safe_load(text)
    env = _environment()
    sources: Dict[str, str] = {}
    compiled: Dict[str, jinja2.Template] = {}
    first_line: Dict[str, int] = {}
    variables: Dict[str, FrozenSet[str]] = {}
    rules: Dict[str, Dict[str, str]] = {}
    for part in PARTS:
        node = nodes.get(part)
        if node is None:
            raise BadTemplate(f"{path.name} has no `{part}` key; a template needs `prompt` (what the model sees) "
                              f"and `response` (what it learns to write).", file=str(path), line=1, field=part)
        source = data[part]
        if not isinstance(source, str):
            raise BadTemplate(f"{path.name}: `{part}` must be a string (Jinja text).", file=str(path),
                              line=node.start_mark.line + 1, field=part)
        # Block scalars (| or >) start on the line after the key; quoted or plain ones on the key's line.
        first_line[part] = node.start_mark.line + 1 + (1 if getattr(node, "style", None) in ("|", ">") else 0)
        try:
            ast = env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise BadTemplate(f"{path.name}: {part}: Jinja syntax error: {exc.message}", file=str(path),
                              line=first_line[part] + (exc.lineno or 1) - 1, field=part) from None
        sources[part] = source
        compiled[part] = env.from_string(source)
        variables[part] = frozenset(jinja2.meta.find_undeclared_variables(ast) - set(env.globals))
        rules[part] = field_rules(ast, variables[part])
    stop = data.get("stop", [])
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        node = nodes.get("stop")
        raise BadTemplate(f"{path.name}: `stop` must be a list of non-empty strings.", file=str(path),
                          line=None if node is None else node.start_mark.line + 1, field="stop")
    return PromptTemplate(path=path, sources=sources, stop=tuple(stop), _compiled=compiled,
                          _first_line=first_line, _variables=variables, _rules=rules)
