"""Errors the engine raises before any work starts on a request.

    EngineError
    ├── InvalidRequestError        bad sampling parameters or prompt
    │   ├── ContextLengthExceededError   prompt + max_tokens over the context size
    │   └── StructuredOutputError        a StructuredOutput this engine cannot express
    ├── QueueFullError             too many requests waiting (the API answers 503)
    ├── EngineShutdownError        the server is shutting down; the request was ended
    └── EngineDeadError            the decode loop died; nothing more will be served

The API layer maps each class to one HTTP status; see ``tether/api/errors.py``.
"""


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidRequestError(EngineError, ValueError):
    """The request cannot be served as given. ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ContextLengthExceededError(InvalidRequestError):
    """Prompt tokens plus ``max_tokens`` do not fit in one sequence's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int) -> None:
        super().__init__(
            f"This model's maximum context length is {context_length} tokens. "
            f"However, you requested {prompt_tokens + max_tokens} tokens "
            f"({prompt_tokens} in the prompt, {max_tokens} for the completion).",
            param="max_tokens",
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length


class StructuredOutputError(InvalidRequestError):
    """The engine cannot constrain output to this ``StructuredOutput`` (an unsupported JSON
    schema feature, a regex it cannot translate). The API names the request field."""


class QueueFullError(EngineError):
    """The waiting queue is full; the client should retry later."""


class ModelUnavailableError(EngineError):
    """The model could not be loaded (its file missing or corrupt, no room for it under the
    memory budget): a 503 with the reason, for the requests that asked for it only."""


class EngineShutdownError(EngineError):
    """The server is shutting down: the request was refused, or ended after the drain."""


class EngineDeadError(EngineError):
    """The engine loop stopped after an internal error."""
