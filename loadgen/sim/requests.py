"""Validate OpenAI request bodies the way vLLM (or DeepSpeed-MII) would (pure).

Completions, chat completions and the Responses API (`input` as text or messages, optional
`instructions`, `max_output_tokens`). Besides the prompt's length the simulator keeps its token
content (see tokens.py) for prefix caching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from loadgen.sim.tokens import Token, fit_tokens, message_tokens, text_tokens

Flavor = Literal["vllm", "mii"]
FLAVORS: tuple[Flavor, ...] = ("vllm", "mii")
Endpoint = Literal["completions", "chat", "responses"]
_DEFAULT_MAX_TOKENS = 16
# Responses API input content parts that carry text.
_TEXT_PARTS = ("input_text", "output_text", "text")


class BadRequest(ValueError):
    """A request the server answers with an HTTP error; `status` is 400 or 404."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the simulator needs from one request (tokens).

    `prompt` is the prompt's token content, `prompt_tokens` of them (None: not known, so never
    cached). For the Responses API `max_tokens` is `max_output_tokens` and `include_usage` is
    True (its last event has usage).
    """

    endpoint: Endpoint
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    ignore_eos: bool
    min_tokens: int
    prompt: tuple[Token, ...] | None = None
    temperature: float | None = None
    instructions: str | None = None

    @property
    def chat(self) -> bool:
        """True for chat completions."""
        return self.endpoint == "chat"


def parse_request(body: Any, *, chat: bool, flavor: Flavor, served_model: str) -> ParsedRequest:
    """The validated completions (or chat) request, or BadRequest with the server's message."""
    _check_model(body, served_model)
    tokens, prompt = _chat_tokens(body.get("messages")) if chat else _prompt_tokens(body)
    stream = _flag(body, "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise BadRequest("stream_options must be an object")
    _check_sampling(body, flavor)
    max_key = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
    max_tokens = _count(body, max_key, 1)
    if max_tokens is None and not chat:
        max_tokens = _DEFAULT_MAX_TOKENS
    min_tokens = _count(body, "min_tokens", 0) or 0
    # DeepSpeed-MII streams no usage, keeps ignore_eos off and does not force min_tokens.
    mii = flavor == "mii"
    return ParsedRequest(
        endpoint="chat" if chat else "completions",
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=stream and not mii and _flag(options, "include_usage"),
        ignore_eos=not mii and _flag(body, "ignore_eos"),
        min_tokens=0 if mii else min_tokens,
        prompt=prompt,
    )


def parse_responses_request(body: Any, *, served_model: str) -> ParsedRequest:
    """The validated Responses API request (vLLM's server), or BadRequest."""
    _check_model(body, served_model)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise BadRequest("instructions must be a string")
    messages = [{"role": "system", "content": instructions}] if instructions else []
    messages += _input_messages(body.get("input"))
    tokens, prompt = _chat_tokens(messages)
    _check_sampling(body, "vllm")
    temperature = body.get("temperature")
    return ParsedRequest(
        endpoint="responses",
        prompt_tokens=tokens,
        max_tokens=_count(body, "max_output_tokens", 1),
        stream=_flag(body, "stream"),
        include_usage=True,
        ignore_eos=_flag(body, "ignore_eos"),
        min_tokens=_count(body, "min_tokens", 0) or 0,
        prompt=prompt,
        temperature=None if temperature is None else float(temperature),
        instructions=instructions,
    )


def _check_model(body: Any, served_model: str) -> None:
    if not isinstance(body, Mapping):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model", served_model)
    if model != served_model:
        raise BadRequest(f"The model `{model}` does not exist.", status=404)


def _prompt_tokens(body: Mapping[str, Any]) -> tuple[int, tuple[Token, ...]]:
    """A completions prompt's length and token content."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str) and prompt:
        words = text_tokens(prompt)
        return max(len(words), 1), fit_tokens(words, max(len(words), 1))
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt), tuple(prompt)
    raise BadRequest("prompt must be a non-empty string or a list of token ids")


def _chat_tokens(messages: Any) -> tuple[int, tuple[Token, ...]]:
    """Chat messages' length (their words, at least 1) and token content."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequest("each message needs a role and content")
        content = message.get("content")
        if not isinstance(content, str) and content is not None:
            raise BadRequest("message content must be a string")
    tokens = message_tokens(messages)
    return max(len(tokens), 1), fit_tokens(tokens, max(len(tokens), 1))


def _input_messages(value: Any) -> list[dict[str, Any]]:
    """A Responses API `input` as chat messages: text is one user message."""
    if isinstance(value, str) and value:
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise BadRequest("input must be a non-empty string or a list of messages")
    messages = []
    for item in value:
        if not isinstance(item, Mapping) or item.get("type", "message") != "message":
            raise BadRequest("the simulator takes input messages only (type 'message')")
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(_part_text(part) for part in content)
        messages.append({"role": item.get("role"), "content": content})
    return messages


def _part_text(part: Any) -> str:
    """The text of one input content part; a space apart from its neighbours' words."""
    if not isinstance(part, Mapping) or part.get("type") not in _TEXT_PARTS:
        raise BadRequest(f"content parts must be one of {', '.join(_TEXT_PARTS)}")
    text = part.get("text")
    if not isinstance(text, str):
        raise BadRequest("a text content part needs its text")
    return f" {text} "


def _check_sampling(body: Mapping[str, Any], flavor: Flavor) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise BadRequest("temperature must be a number")
        if flavor == "mii" and temperature <= 0:
            raise BadRequest("temperature must be > 0")
        if temperature < 0:
            raise BadRequest("temperature must be non-negative")
    n = body.get("n", 1)
    if n != 1:
        raise BadRequest("the simulator generates one choice per request (n must be 1)")


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false")
    return value


def _count(body: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"{key} must be an integer >= {minimum}")
    return value
