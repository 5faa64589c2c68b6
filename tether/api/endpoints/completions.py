"""``POST /v1/completions``: raw prompt → engine → chunks or one ``text.completion``.

``echo`` follows Together, not OpenAI: the prompt comes back in the response's ``prompt``
field (``[{"text", "logprobs"}]``) and ``choices[].text`` is the completion alone. OpenAI
prepends the prompt to ``text``; doing both would hand Together clients the prompt twice.
A streamed response does not echo.
"""

from __future__ import annotations

from typing import Any

from tether.api.pipeline.context import ServingContext
from tether.api.pipeline.endpoint import Call, EnvelopeEndpoint, Prompt
from tether.api.pipeline.prompt import response_format_constraint, tokenize_prompt
from tether.api.pipeline.results import ChoiceResult
from tether.api.pipeline.streaming import ChoiceStreamer, EnvelopeStreamer
from tether.api.wire import answers, objects, requests
from tether.api.wire.objects import LogprobStyle


class CompletionService(EnvelopeEndpoint[requests.CompletionRequest]):
    schema = requests.CompletionRequest
    chat = False

    async def prepare(self, ctx: ServingContext, body: requests.CompletionRequest) -> Prompt:
        constraint = response_format_constraint(body.response_format)
        ids = await tokenize_prompt(ctx.engine, body.prompt_text)
        return Prompt(body.prompt_text, ids, constraint)

    def logprob_style(self, body: requests.CompletionRequest) -> LogprobStyle:
        # The completions API has only Together's (and OpenAI's legacy) integer form.
        return "none" if body.logprob_style == "none" else "together"

    def streamer(self, call: Call[requests.CompletionRequest]) -> ChoiceStreamer:
        body = call.body
        return EnvelopeStreamer(self.chunk_builder(call), body.choices_n, body.include_usage)

    def choice(
        self, call: Call[requests.CompletionRequest], result: ChoiceResult
    ) -> dict[str, Any]:
        logprobs = None
        if self.logprob_style(call.body) != "none":
            logprobs = objects.logprobs_object(result.logprob_tokens)
        return answers.completion_choice(
            result.index, result.text, result.finish_reason.value, result.seed, logprobs
        )
