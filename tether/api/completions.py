"""``POST /v1/completions``: raw prompt → engine → chunks or one ``text.completion``.

``echo`` follows Together, not OpenAI: the prompt comes back in the response's ``prompt``
field (``[{"text", "logprobs"}]``) and ``choices[].text`` is the completion alone. OpenAI
prepends the prompt to ``text``; doing both would hand Together clients the prompt twice.
A streamed response does not echo.
"""

from __future__ import annotations

from typing import Any

from tether.api import requests, responses
from tether.api.endpoint import Call, GenerationEndpoint, Prompt
from tether.api.serving import (
    ChoiceResult,
    UsageTally,
    echo_prompt,
    response_format_constraint,
    tokenize_prompt,
)
from tether.api.streaming import ChoiceStreamer, EnvelopeStreamer


class CompletionService(GenerationEndpoint[requests.CompletionRequest]):
    schema = requests.CompletionRequest

    async def prepare(self, body: requests.CompletionRequest) -> Prompt:
        constraint = response_format_constraint(body.response_format)
        ids = await tokenize_prompt(self.ctx.engine, body.prompt_text)
        return Prompt(body.prompt_text, ids, constraint)

    def streamer(self, call: Call[requests.CompletionRequest]) -> ChoiceStreamer:
        builder = responses.ChunkBuilder(
            call.request_id,
            call.model,
            call.created,
            chat=False,
            # The completions API has only Together's (and OpenAI's legacy) integer form.
            logprobs="none" if call.body.logprob_style == "none" else "together",
        )
        return EnvelopeStreamer(builder, call.body.choices_n, call.body.include_usage)

    def response(
        self,
        call: Call[requests.CompletionRequest],
        results: list[ChoiceResult],
        tally: UsageTally,
    ) -> dict[str, Any]:
        logprobs = self.keeps_tokens(call.body)
        choices = [
            responses.completion_choice(
                result.index,
                result.text,
                result.finish_reason.value,
                result.seed,
                responses.logprobs_object(result.logprob_tokens) if logprobs else None,
            )
            for result in results
        ]
        prompt = call.prompt
        return responses.completion_response(
            request_id=call.request_id,
            model=call.model,
            created=call.created,
            chat=False,
            prompt=echo_prompt(self.ctx, call.body, prompt.text, prompt.ids, results),
            choices=choices,
            usage_=tally.wire(),
        )
