"""The tool-call format is detected from the chat template (issue 19)."""

from __future__ import annotations

import pytest

from tests.chat.tool_parsers.roundtrip import TEMPLATES, template
from tether.chat.tool_parsers import PARSERS, detect, parser_class

FAMILIES = {
    "Qwen-Qwen2.5-7B-Instruct": "hermes",
    "Qwen-Qwen3-0.6B": "hermes",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": "hermes",
    "ibm-granite-granite-4.0": "hermes",
    "Qwen3-Coder": "qwen3_coder",
    "Qwen3.5-4B": "qwen3_coder",
    "meta-llama-Llama-3.1-8B-Instruct": "llama3_json",
    "meta-llama-Llama-3.3-70B-Instruct": "llama3_json",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": "deepseek_v3",
    "deepseek-ai-DeepSeek-V3.1": "deepseek_v31",
    "openai-gpt-oss-120b": "openai",
    "Mistral-Small-3.2-24B-Instruct-2506": "mistral",
    "mistralai-Mistral-Nemo-Instruct-2407": "mistral",
    "moonshotai-Kimi-K2": "kimi_k2",
    "Kimi-K2-Thinking": "kimi_k2",
    "GLM-4.6": "glm45",
    "MiniMax-M2": "minimax_m2",
    "google-gemma-4-31B-it": "gemma4",
    "google-gemma-2-2b-it": "tether",  # writes no calls: Tether's own form is asked for
}


@pytest.mark.parametrize(("name", "parser"), FAMILIES.items())
def test_the_family_is_detected_from_its_template(name: str, parser: str) -> None:
    assert template(name).tool_parser == parser


def test_no_template_is_tethers_own_form() -> None:
    assert detect(None) == "tether"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_registered_parser_is_importable_under_its_name(name: str) -> None:
    cls = parser_class(name)
    assert name == cls.name or (name, cls.name) == ("qwen3_xml", "qwen3_coder")


def test_every_template_gets_a_registered_parser() -> None:
    for path in TEMPLATES.glob("*.jinja"):
        assert template(path.stem).tool_parser in PARSERS, path.stem
