"""Every real template of llama.cpp's ``models/templates/`` renders an agent's second turn
(a call sent back with ``content: null``, then its result), or fails with its own error,
which the API answers as a 400 (issue 19)."""

from __future__ import annotations

import re

import pytest

from tests.chat.tool_parsers.roundtrip import (
    TEMPLATES,
    TOOLS,
    agent_conversation,
    template,
)
from tether.chat.messages import Message, ToolCall
from tether.chat.template import ChatTemplateError

NAMES = sorted(path.stem for path in TEMPLATES.glob("*.jinja"))
# Templates that cannot render OpenAI-shaped tools at all, with their own error: Command R+
# reads tools in Cohere's older shape, firefunction v2 reads a ``functions`` variable.
REFUSE = {
    "CohereForAI-c4ai-command-r-plus-tool_use": "has no attribute 'description'",
    "fireworks-ai-llama-3-firefunction-v2": "'functions' is undefined",
}


@pytest.mark.parametrize("name", NAMES)
def test_a_template_renders_an_agents_second_turn(name: str) -> None:
    chat = template(name, bos_token="<s>", eos_token="</s>")
    tools = list(TOOLS.values())
    if name in REFUSE:
        with pytest.raises(ChatTemplateError, match=re.escape(REFUSE[name])):
            chat.render(agent_conversation(), tools)
        return
    prompt = chat.render(agent_conversation(), tools)
    assert "temperature" in prompt  # the tool's result reached the prompt (quoted or not)
    assert "None" not in prompt.replace("none", "")  # content null was no text "None"


@pytest.mark.parametrize(
    "name", ["Mistral-Small-3.2-24B-Instruct-2506", "mistralai-Mistral-Nemo-Instruct-2407"]
)
def test_mistral_templates_get_openai_style_ids_mapped_to_nine_alphanumerics(name: str) -> None:
    chat = template(name)
    assert re.fullmatch(r"[A-Za-z0-9]{9}", chat.call_ids.new())
    openai_id = "call_0123456789abcdef01234567"
    conversation = [
        Message("user", "Weather?"),
        Message("assistant", None, tool_calls=(ToolCall("now", {}, openai_id),)),
        Message("tool", "noon", tool_call_id=openai_id),
    ]
    prompt = chat.render(conversation, list(TOOLS.values()))
    mapped = chat.call_ids.for_template_id(openai_id)
    assert re.fullmatch(r"[A-Za-z0-9]{9}", mapped)
    assert prompt.count(mapped) == 2  # the call and its result still match
    assert openai_id not in prompt


def test_other_templates_keep_the_clients_ids() -> None:
    chat = template("Qwen-Qwen3-0.6B")
    assert chat.call_ids.new().startswith("call_")
    assert chat.call_ids.for_template_id("call_abc") == "call_abc"
