"""DeepSeek's calls: a ``<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>`` section of
``<｜tool▁call▁begin｜>…<｜tool▁call▁end｜>`` blocks.

- V3, R1-0528 and the R1 distills (``deepseek_v3``) write a block as
  ``function<｜tool▁sep｜>NAME`` then the arguments in a fenced ```` ```json ```` block;
- V3.1 (``deepseek_v31``) writes ``NAME<｜tool▁sep｜>{…}``.

V3.2 and V4 write neither: their templates use the ``<｜DSML｜function_calls>`` XML form.
Each section's calls are released when the section closes (or the answer ends, where the
end-of-sentence token can come before ``<｜tool▁calls▁end｜>``: R1-Distill-Llama's template
writes a single call without it).
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

CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"

# V3's block after its separator: the name on its own line, then the fenced arguments.
V3_CALL = re.compile(r"\s*(?P<name>[^\s`]+)\s*```json\s*(?P<arguments>.*?)\s*```\s*", re.S)


class DeepSeekV3Parser(SectionParser):
    """``<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\n{…}\\n```<｜tool▁call▁end｜>``
    blocks (V3, R1-0528, R1 distills)."""

    name = "deepseek_v3"
    sections = (Section(CALLS_BEGIN, CALLS_END),)
    markers = (CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP)
    # A call block around the function's name and its arguments' JSON.
    layout: tuple[str, str, str] = (f"{CALL_BEGIN}function{SEP}", "\n```json\n", f"\n```{CALL_END}")

    @classmethod
    def call_format(cls, tools: Sequence[Function]) -> CallFormat:
        before, after, end = cls.layout
        shapes = tuple(
            CallShape((f"{before}{tool.name}{after}",), tool.parameters or {}, (end,))
            for tool in tools
        )
        # The R1 templates put a newline between blocks, V3.1's none.
        section = CallSection(CALLS_BEGIN, shapes, separator=(Pattern("\n?"),), closer=(CALLS_END,))
        return CallFormat((section,))

    def parse_section(self, section: Section, body: str) -> list[ParsedCall] | None:
        return block_calls(body, CALL_BEGIN, CALL_END, self.parse_call)

    def parse_call(self, text: str) -> ParsedCall | None:
        """One block's call, or None."""
        kind, sep, rest = text.partition(SEP)
        found = V3_CALL.fullmatch(rest)
        # The templates write the call's ``type``, which is always "function".
        if not sep or kind.strip() != "function" or found is None:
            return None
        return text_call(found["name"], found["arguments"], self.tools)


class DeepSeekV31Parser(DeepSeekV3Parser):
    """``<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜>`` blocks (V3.1)."""

    name = "deepseek_v31"
    layout = (CALL_BEGIN, SEP, CALL_END)

    def parse_call(self, text: str) -> ParsedCall | None:
        name, sep, arguments = text.partition(SEP)
        return text_call(name, arguments, self.tools) if sep else None
