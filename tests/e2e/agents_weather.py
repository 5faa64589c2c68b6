"""A one-tool agent of the OpenAI Agents SDK against a Tether server (run by
``test_responses_api.py``): ``python agents_weather.py BASE_URL MODEL`` prints one JSON line,
``{"calls": [...], "final_output": {...}}``."""

from __future__ import annotations

import json
import sys

import openai
from agents import (
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from pydantic import BaseModel


class Report(BaseModel):
    city: str


def main(base_url: str, model: str) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny in {city}"

    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Answer weather questions with the tool.",
        model=OpenAIResponsesModel(model=model, openai_client=client),
        tools=[get_weather],
        # The small base model would not choose a tool by itself, nor end a free answer: the
        # call is required (after it the SDK resets tool_choice to auto), and the final
        # answer is structured, so its grammar ends it. Greedy, so that the run is the same
        # every time (a sampled city name can run past max_tokens).
        model_settings=ModelSettings(tool_choice="required", max_tokens=64, temperature=0),
        output_type=Report,
    )
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=3)
    print(json.dumps({"calls": calls, "final_output": result.final_output.model_dump()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
