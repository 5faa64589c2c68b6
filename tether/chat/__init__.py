"""Chat: OpenAI-style messages in, prompt text out; tool calls parsed from the answer."""
