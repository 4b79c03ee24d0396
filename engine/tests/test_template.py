"""The prompt template: rendering, variables, and errors that point at the line in the .prompt.yaml."""
from __future__ import annotations

import pytest

from conftest import SAMPLES

from qlora_engine.errors import BadTemplate
from qlora_engine.template import load_template


def write(tmp_path, text):
    path = tmp_path / "t.prompt.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_template_renders_prompt_and_response():
    template = load_template(SAMPLES / "summarize.prompt.yaml")
    assert template.variables() == {"dialogue", "summary"}
    assert template.variables("prompt") == {"dialogue"}
    prompt, response = template.render({"dialogue": "A: hi\nB: hello", "summary": "They greet.", "topic": "x"})
    assert prompt == "Instruct: Summarize the following conversation.\nA: hi\nB: hello\nOutput:\n"
    assert response == "They greet."
    assert template.stop == ()


def test_non_string_values_render_with_str(tmp_path):
    template = load_template(write(tmp_path, 'prompt: "n={{ n }} ok={{ ok }}"\nresponse: "{{ xs }}"\n'))
    assert template.render({"n": 3, "ok": True, "xs": [1, 2]}) == ("n=3 ok=True", "[1, 2]")


def test_stop_strings(tmp_path):
    template = load_template(write(tmp_path, 'prompt: "{{ a }}"\nresponse: "{{ b }}"\nstop: ["###", "\\n\\n"]\n'))
    assert template.stop == ("###", "\n\n")


def test_syntax_error_points_at_the_file_line(tmp_path):
    path = write(tmp_path, "# comment\nprompt: |\n  line one\n  {{ dialogue }\n  Output:\n"
                           "response: \"{{ summary }}\"\n")
    with pytest.raises(BadTemplate) as info:
        load_template(path)
    assert info.value.file == str(path)
    assert info.value.line == 4  # the line with the broken tag, in the .prompt.yaml
    assert info.value.field == "prompt"


def test_missing_key_names_the_field(tmp_path):
    with pytest.raises(BadTemplate) as info:
        load_template(write(tmp_path, 'prompt: "{{ dialogue }}"\n'))
    assert info.value.field == "response"
    assert "response" in info.value.message


def test_bad_yaml_and_bad_stop(tmp_path):
    with pytest.raises(BadTemplate) as info:
        load_template(write(tmp_path, 'prompt: "{{ a }}\nresponse: [\n'))
    assert info.value.line is not None
    with pytest.raises(BadTemplate) as info:
        load_template(write(tmp_path, 'prompt: a\nresponse: b\nstop: "###"\n'))
    assert info.value.field == "stop"


def test_missing_file(tmp_path):
    with pytest.raises(BadTemplate) as info:
        load_template(tmp_path / "nope.prompt.yaml")
    assert info.value.field == "template"


def test_sandbox_blocks_attribute_escape(tmp_path):
    template = load_template(write(tmp_path, 'prompt: "{{ x.__class__.__mro__ }}"\nresponse: "r"\n'))
    with pytest.raises(BadTemplate):
        template.render({"x": "s"})


def test_variable_line(tmp_path):
    template = load_template(write(tmp_path, "prompt: |\n  Say:\n  {{ dialogue }}\nresponse: \"{{ summry }}\"\n"))
    assert template.variable_line("dialogue") == 3
    assert template.variable_line("summry") == 4
