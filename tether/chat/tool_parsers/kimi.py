"""Kimi K2's calls: a ``<|tool_calls_section_begin|>…<|tool_calls_section_end|>`` section of
``<|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{…}<|tool_call_end|>``
blocks.

The id ``functions.NAME:IDX`` is the call's id: Kimi's templates write it back in later turns
(``## Return of functions.NAME:IDX``), so it must reach the client unchanged
(``shared/docs/model-formats.md``). Some K2 checkpoints write the section markers in the
singular (``<|tool_call_section_begin|>``), which vLLM's parser accepts too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tether.chat.messages import Function
from tether.chat.tool_parsers.base import (
    CallFormat,
    CallSection,
    CallShape,
    ParsedCall,
    Pattern,
    Section,
    SectionParser,
)
from tether.chat.tool_parsers.blocks import block_calls, text_call

SECTION = Section("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>")
SINGULAR = Section("<|tool_call_section_begin|>", "<|tool_call_section_end|>")
CALL_BEGIN = "<|tool_call_begin|>"
CALL_END = "<|tool_call_end|>"
ARGUMENTS = "<|tool_call_argument_begin|>"

# ``functions.NAME:IDX``: the function's name follows the last dot.
CALL_ID = re.compile(r"(?:\S*\.)?(?P<name>[^\s.:]+):\d+")


class KimiK2Parser(SectionParser):
    """Kimi K2 (Instruct, Thinking)."""

    name = "kimi_k2"
    sections = (SECTION, SINGULAR)
    markers = (
        SECTION.opener,
        SECTION.closer,
        SINGULAR.opener,
        SINGULAR.closer,
        CALL_BEGIN,
        ARGUMENTS,
        CALL_END,
    )

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        shapes = tuple(
            CallShape(
                (f"{CALL_BEGIN}functions.{tool.name}:", Pattern("[0-9]{1,4}"), ARGUMENTS),
                tool.parameters or {},
                (CALL_END,),
            )
            for tool in tools
        )
        return CallFormat(
            tuple(
                CallSection(section.opener, shapes, separator=(), closer=(section.closer,))
                for section in cls.sections
            )
        )

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        return block_calls(body, CALL_BEGIN, CALL_END, self._call)

    def _call(self, text: str) -> ParsedCall | None:
        call_id, sep, arguments = text.partition(ARGUMENTS)
        found = CALL_ID.fullmatch(call_id.strip())
        if not sep or found is None:
            return None
        return text_call(found["name"], arguments, self.tools, call_id.strip())
