"""Tool-call parsers, one per model family, under vLLM's ``--tool-call-parser`` names.

``detect`` picks a family from the chat template's source by an ordered table of substrings,
most specific first (as llama.cpp's ``common/chat.cpp`` does); ``--tool-call-parser NAME``
overrides it. Parsers are imported when first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from tether.chat.messages import Function
from tether.chat.tool_parsers.base import ToolParser

# name → "module:class" under tether.chat.tool_parsers
PARSERS: Mapping[str, str] = {
    "tether": "json_calls:TetherParser",
    "hermes": "json_calls:HermesParser",
    "llama3_json": "json_calls:Llama3JsonParser",
    "qwen3_coder": "xml_calls:Qwen3CoderParser",
    "qwen3_xml": "xml_calls:Qwen3CoderParser",
    "glm45": "xml_calls:Glm45Parser",
    "minimax_m2": "xml_calls:MiniMaxM2Parser",
    "deepseek_v3": "deepseek:DeepSeekV3Parser",
    "deepseek_v31": "deepseek:DeepSeekV31Parser",
    "kimi_k2": "kimi:KimiK2Parser",
    "mistral": "mistral:MistralParser",
    "openai": "harmony:HarmonyParser",
    "gemma4": "gemma4:Gemma4Parser",
}

# (substrings that must all be in the template, parser name), most specific first.
DETECTION: tuple[tuple[tuple[str, ...], str], ...] = (
    (("<|channel|>", "<|message|>"), "openai"),
    (("<minimax:tool_call>",), "minimax_m2"),
    (("<|tool_calls_section_begin|>",), "kimi_k2"),
    (("<arg_key>",), "glm45"),
    # V3 and R1 fence the arguments as ```json (R1's templates build "function<｜tool▁sep｜>"
    # from the call's type, so that text itself is not in them); V3.1 writes bare JSON.
    (("<｜tool▁calls▁begin｜>", "```json"), "deepseek_v3"),
    (("<｜tool▁calls▁begin｜>",), "deepseek_v31"),
    (("[TOOL_CALLS]",), "mistral"),
    (("<function=", "<parameter="), "qwen3_coder"),
    (("<|tool_call>",), "gemma4"),
    (("<tool_call>",), "hermes"),
    (("<|python_tag|>",), "llama3_json"),
    (('"parameters": dictionary of argument name and its value',), "llama3_json"),
)


def detect(template: str | None) -> str:
    """The parser for a chat template's family; ``tether`` (Tether's own tagged form) when
    the template has none of the known formats."""
    for needles, name in DETECTION:
        if template and all(needle in template for needle in needles):
            return name
    return "tether"


def parser_class(name: str) -> type[ToolParser]:
    """The parser registered as ``name``; ``KeyError`` for an unknown name."""
    module, _, cls = PARSERS[name].partition(":")
    found: type[ToolParser] = getattr(
        importlib.import_module(f"tether.chat.tool_parsers.{module}"), cls
    )
    return found


def make_parser(name: str, tools: Mapping[str, Function]) -> ToolParser:
    return parser_class(name)(tools)
