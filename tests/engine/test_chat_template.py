"""Chat templates: Gemma's turn format, Jinja templates in a sandbox, and reading tool calls."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tether.engine.chat_template import ChatTemplate, could_be_tool_call_prefix, parse_tool_calls
from tether.engine.errors import InvalidRequestError

GEMMA = ChatTemplate(None)
CHATML = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
INSTRUCTION = (
    "You can call the following functions (name, description, JSON schema of the arguments):\n"
    '{"name": "get_weather", "description": "Current weather", "parameters": '
    '{"type": "object", "properties": {"city": {"type": "string"}}}}\n'
    "\n"
    "To call a function, answer only with\n"
    '<tool_call>{"name": "<function name>", "arguments": {<the arguments as JSON>}}</tool_call>\n'
    "(one such block per call). Otherwise, answer normally."
)
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- Gemma's format ---------------------------------------------------------------------------


def test_gemma_folds_the_system_text_into_the_first_user_turn() -> None:
    messages = [{"role": "system", "content": "Be brief."}, user("Hi")]
    assert GEMMA.render(messages) == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_multi_turn_writes_assistant_as_model() -> None:
    messages = [user("Hi"), {"role": "assistant", "content": "Hello!"}, user(" How are you? ")]
    assert GEMMA.render(messages) == (
        "<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nHow are you?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_without_generation_prompt_ends_after_the_last_turn() -> None:
    rendered = GEMMA.render([user("Hi")], add_generation_prompt=False)
    assert rendered == "<start_of_turn>user\nHi<end_of_turn>\n"


def test_prompt_never_contains_bos() -> None:
    assert "<bos>" not in ChatTemplate(None, bos_token="<bos>").render([user("Hi")])


def test_text_parts_are_joined_with_newlines() -> None:
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    assert GEMMA.render([user(parts)]) == (
        "<start_of_turn>user\nfirst\nsecond<end_of_turn>\n<start_of_turn>model\n"
    )


def test_system_only_conversation_keeps_the_system_text() -> None:
    assert GEMMA.render([{"role": "system", "content": "Say hi."}]) == (
        "<start_of_turn>user\nSay hi.<end_of_turn>\n<start_of_turn>model\n"
    )


def test_tools_instruction_opens_the_first_user_turn() -> None:
    rendered = GEMMA.render([user("Weather in Paris?")], tools=[WEATHER])
    assert rendered == (
        f"<start_of_turn>user\n{INSTRUCTION}\n\nWeather in Paris?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_tools_instruction_follows_the_system_text() -> None:
    messages = [{"role": "system", "content": "Be brief."}, user("Weather?")]
    rendered = GEMMA.render(messages, tools=[WEATHER])
    assert rendered.startswith(f"<start_of_turn>user\nBe brief.\n\n{INSTRUCTION}\n\nWeather?")


def test_tool_call_and_tool_response_render_as_tagged_text() -> None:
    messages = [
        user("Weather in Paris?"),
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ]
    assert GEMMA.render(messages) == (
        "<start_of_turn>user\nWeather in Paris?<end_of_turn>\n"
        "<start_of_turn>model\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
        "<end_of_turn>\n"
        "<start_of_turn>user\n"
        '<tool_response>{"name": "get_weather", "content": "18C, sunny"}</tool_response>'
        "<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_tool_response_without_a_known_call_has_no_name() -> None:
    rendered = GEMMA.render([{"role": "tool", "tool_call_id": "x", "content": "42"}])
    assert '<tool_response>{"content": "42"}</tool_response>' in rendered


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "robot", "content": "beep"}],
        [{"content": "no role"}],
        [user(None)],
        [user(42)],
        [user([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}])],
        [{"role": "assistant", "content": None, "tool_calls": [{"function": {}}]}],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}],
            }
        ],
    ],
)
def test_unrenderable_messages_are_invalid(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidRequestError) as info:
        GEMMA.render(messages)
    assert info.value.param == "messages"


def test_malformed_tools_are_invalid() -> None:
    with pytest.raises(InvalidRequestError) as info:
        GEMMA.render([user("Hi")], tools=[{"type": "function"}])
    assert info.value.param == "tools"


# --- Jinja templates ----------------------------------------------------------------------------


def test_chatml_template_renders_through_the_sandbox_without_bos() -> None:
    template = ChatTemplate(CHATML, bos_token="<s>")
    messages = [{"role": "system", "content": "Be brief."}, user("Hi")]
    assert template.render(messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_template_without_tools_gets_the_instruction_and_tagged_calls() -> None:
    template = ChatTemplate(CHATML)
    assert not template.native_tools
    messages = [
        user("Weather?"),
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    assert template.render(messages, tools=[WEATHER]) == (
        f"<|im_start|>user\n{INSTRUCTION}\n\nWeather?<|im_end|>\n"
        "<|im_start|>assistant\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
        "<|im_end|>\n"
        '<|im_start|>user\n<tool_response>{"name": "get_weather", "content": "18C"}'
        "</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_template_with_native_tools_gets_tools_and_argument_objects() -> None:
    source = (
        "{% if tools %}TOOLS {{ tools | map(attribute='function.name') | join(',') }}\n{% endif %}"
        "{% for m in messages %}{{ m.role }}: "
        "{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments | tojson }}"
        "{% else %}{{ m.content }}{% endif %}{{ '\\n' }}{% endfor %}"
    )
    template = ChatTemplate(source)
    assert template.native_tools
    messages = [
        user("Weather?"),
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    assert template.render(messages, tools=[WEATHER], add_generation_prompt=False) == (
        'TOOLS get_weather\nuser: Weather?\nassistant: {"city": "Paris"}\ntool: 18C\n'
    )


def test_tojson_does_not_html_escape() -> None:
    template = ChatTemplate("{{ messages[0].content | tojson }}")
    assert template.render([user("<a & b>")]) == '"<a & b>"'


def test_strftime_now_is_available() -> None:
    template = ChatTemplate("{{ strftime_now('%Y') }}")
    assert template.render([user("Hi")]) == str(datetime.datetime.now().year)


def test_generation_tag_passes_through() -> None:
    template = ChatTemplate("{% generation %}{{ messages[0].content }}{% endgeneration %}")
    assert template.render([user("Hi")]) == "Hi"


def test_raise_exception_becomes_an_invalid_request_with_its_message() -> None:
    template = ChatTemplate("{{ raise_exception('Conversation roles must alternate') }}")
    with pytest.raises(InvalidRequestError, match="Conversation roles must alternate") as info:
        template.render([user("Hi")])
    assert info.value.param == "messages"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.append(1) }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_sandbox_escapes_are_invalid_requests(source: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        ChatTemplate(source).render([user("Hi")])
    assert info.value.param == "messages"


def test_template_that_does_not_compile_is_rejected_at_load() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        ChatTemplate("{% for m in messages %}")


# --- reading tool calls back ------------------------------------------------------------------

NAMES = {"get_weather", "now"}


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        (
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
        (
            '\n <tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>\n'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Köln"}}</tool_call> ',
            [
                {"name": "now", "arguments": "{}"},
                {"name": "get_weather", "arguments": '{"city":"Köln"}'},
            ],
        ),
        (
            ' {"name": "get_weather", "arguments": {"city": "Paris"}} ',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
        (
            '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
        (
            '{"name": "get_weather", "parameters": {"city": "Paris"}}',
            [{"name": "get_weather", "arguments": '{"city":"Paris"}'}],
        ),
    ],
)
def test_tool_calls_are_parsed(text: str, calls: list[dict[str, str]]) -> None:
    assert parse_tool_calls(text, NAMES) == calls


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is sunny.",
        '{"name": "send_email", "arguments": {}}',
        '<tool_call>{"name": "send_email", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {}}',
        '<tool_call>{"name": "now", "arguments": {}}</tool_call> and some more text',
        '{"name": "now", "arguments": [1, 2]}',
        '{"name": "now", "arguments": {}, "reason": "a JSON answer, not a call"}',
        '{"city": "Paris"}',
        "",
    ],
)
def test_text_that_is_not_only_known_calls_is_not_parsed(text: str) -> None:
    assert parse_tool_calls(text, NAMES) is None


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("", True),
        ("  <tool", True),
        ("<tool_call>", True),
        ('<tool_call>{"name"', True),
        ('\n{"na', True),
        ("Hello", False),
        ("<b>bold</b>", False),
        ("<tool_cal!", False),
    ],
)
def test_could_be_tool_call_prefix(text: str, held: bool) -> None:
    assert could_be_tool_call_prefix(text) is held
