"""Chat templates: Gemma's turn format, Jinja templates in a sandbox, and reading tool calls."""

from __future__ import annotations

import datetime

import pytest

from tether.chat.messages import Function, Message, ToolCall
from tether.chat.template import ChatTemplate, ChatTemplateError

GEMMA = ChatTemplate(None)
CHATML = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WEATHER = Function(
    "get_weather",
    "Current weather",
    {"type": "object", "properties": {"city": {"type": "string"}}},
)
INSTRUCTION = (
    "You can call the following functions (name, description, JSON schema of the arguments):\n"
    '{"name": "get_weather", "description": "Current weather", "parameters": '
    '{"type": "object", "properties": {"city": {"type": "string"}}}}\n'
    "\n"
    "To call a function, answer only with\n"
    '<tool_call>{"name": "<function name>", "arguments": {<the arguments as JSON>}}</tool_call>\n'
    "(one such block per call). Otherwise, answer normally."
)
CALL = ToolCall("get_weather", {"city": "Paris"}, "call_1")
CALLED = Message("assistant", None, tool_calls=(CALL,))


def user(text: str) -> Message:
    return Message("user", text)


def system(text: str) -> Message:
    return Message("system", text)


# --- Gemma's format ---------------------------------------------------------------------------


def test_gemma_folds_the_system_text_into_the_first_user_turn() -> None:
    messages = [system("Be brief."), user("Hi")]
    assert GEMMA.render(messages) == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_multi_turn_writes_assistant_as_model() -> None:
    messages = [user("Hi"), Message("assistant", "Hello!"), user(" How are you? ")]
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


def test_system_only_conversation_keeps_the_system_text() -> None:
    assert GEMMA.render([system("Say hi.")]) == (
        "<start_of_turn>user\nSay hi.<end_of_turn>\n<start_of_turn>model\n"
    )


def test_tools_instruction_opens_the_first_user_turn() -> None:
    rendered = GEMMA.render([user("Weather in Paris?")], tools=[WEATHER])
    assert rendered == (
        f"<start_of_turn>user\n{INSTRUCTION}\n\nWeather in Paris?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_tools_instruction_follows_the_system_text() -> None:
    messages = [system("Be brief."), user("Weather?")]
    rendered = GEMMA.render(messages, tools=[WEATHER])
    assert rendered.startswith(f"<start_of_turn>user\nBe brief.\n\n{INSTRUCTION}\n\nWeather?")


def test_tool_call_and_tool_response_render_as_tagged_text() -> None:
    messages = [
        user("Weather in Paris?"),
        CALLED,
        Message("tool", "18C, sunny", tool_call_id="call_1"),
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
    rendered = GEMMA.render([Message("tool", "42", tool_call_id="x")])
    assert '<tool_response>{"content": "42"}</tool_response>' in rendered


# --- Jinja templates ----------------------------------------------------------------------------


def test_chatml_template_renders_through_the_sandbox_without_bos() -> None:
    template = ChatTemplate(CHATML, bos_token="<s>")
    messages = [system("Be brief."), user("Hi")]
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
        CALLED,
        Message("tool", "18C", tool_call_id="call_1"),
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
        CALLED,
        Message("tool", "18C", tool_call_id="call_1"),
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


def test_raise_exception_becomes_a_template_error_with_its_message() -> None:
    template = ChatTemplate("{{ raise_exception('Conversation roles must alternate') }}")
    with pytest.raises(ChatTemplateError, match="Conversation roles must alternate"):
        template.render([user("Hi")])


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{% set ns = namespace(x=[]) %}{{ ns.x.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_sandbox_escapes_are_template_errors(source: str) -> None:
    with pytest.raises(ChatTemplateError):
        ChatTemplate(source).render([user("Hi")])


def test_a_template_may_change_its_own_lists_and_dicts() -> None:
    # Kimi K2's templates queue call ids in a namespace list (issue 19).
    template = ChatTemplate(
        "{% set queue = namespace(ids=[]) %}{% set d = {} %}"
        "{% for m in messages %}{% set _ = queue.ids.append(m.role) %}{% endfor %}"
        "{% set _ = d.update({'n': queue.ids | length}) %}"
        "{{ queue.ids.pop(0) }} {{ queue.ids | join(',') }} {{ d.n }}"
    )
    assert template.render([user("a"), Message("assistant", "b"), user("c")]) == (
        "user assistant,user 3"
    )


def test_content_null_reaches_the_template_as_an_empty_string() -> None:
    # Qwen3's template tests '</think>' in content, which fails on None.
    template = ChatTemplate(
        "{% if tools %}{% endif %}"
        "{% for m in messages %}[{{ m.content }}]{{ '</think>' in m.content }}{% endfor %}"
    )
    assert template.render([user("Hi"), CALLED]) == "[Hi]False[]False"


def test_template_that_does_not_compile_is_rejected_at_load() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        ChatTemplate("{% for m in messages %}")


# --- reasoning models -------------------------------------------------------------------------

# Qwen3's template, cut to what concerns reasoning: earlier thinking from
# ``reasoning_content``, and ``enable_thinking=false`` writes an empty thinking block.
QWEN3 = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.role == 'assistant' and message.reasoning_content %}"
    "<think>\n{{ message.reasoning_content }}\n</think>\n\n{% endif %}"
    "{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}"
    "{% if reasoning_effort is defined %}[effort {{ reasoning_effort }}]{% endif %}"
)


def test_a_reasoning_template_has_its_markers() -> None:
    markers = ChatTemplate(QWEN3).reasoning_markers
    assert markers is not None and (markers.start, markers.end) == ("<think>", "</think>")
    assert GEMMA.reasoning_markers is None
    assert ChatTemplate(CHATML).reasoning_markers is None


def test_template_variables_reach_the_template() -> None:
    template = ChatTemplate(QWEN3)
    on = template.render([user("Hi")])
    off = template.render([user("Hi")], variables={"enable_thinking": False})
    assert on.endswith("<|im_start|>assistant\n")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert template.render([user("Hi")], variables={"reasoning_effort": "low"}).endswith(
        "[effort low]"
    )


def test_an_earlier_answers_reasoning_reaches_the_template() -> None:
    answered = Message("assistant", "4", reasoning="Two and two.")
    prompt = ChatTemplate(QWEN3).render([user("2+2?"), answered, user("3+3?")])
    assert "<|im_start|>assistant\n<think>\nTwo and two.\n</think>\n\n4<|im_end|>" in prompt


def test_the_servers_own_variables_cannot_be_replaced() -> None:
    with pytest.raises(ChatTemplateError, match="messages"):
        ChatTemplate(QWEN3).render([user("Hi")], variables={"messages": []})
