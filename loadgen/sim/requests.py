"""Validate OpenAI request bodies the way vLLM (or DeepSpeed-MII) would (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from loadgen.sim.virtual import prompt_tokens

Flavor = Literal["vllm", "mii"]
FLAVORS: tuple[Flavor, ...] = ("vllm", "mii")
_DEFAULT_MAX_TOKENS = 16


class BadRequest(ValueError):
    """A request the server answers with an HTTP error; `status` is 400 or 404."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the simulator needs from one request (tokens)."""

    chat: bool
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    ignore_eos: bool
    min_tokens: int


def parse_request(body: Any, *, chat: bool, flavor: Flavor, served_model: str) -> ParsedRequest:
    """The validated request, or BadRequest with the server's kind of message."""
    if not isinstance(body, Mapping):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model", served_model)
    if model != served_model:
        raise BadRequest(f"The model `{model}` does not exist.", status=404)
    tokens = _chat_tokens(body) if chat else _prompt_tokens(body)
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
        chat=chat,
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=stream and not mii and _flag(options, "include_usage"),
        ignore_eos=not mii and _flag(body, "ignore_eos"),
        min_tokens=0 if mii else min_tokens,
    )


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str) and prompt:
        return prompt_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    raise BadRequest("prompt must be a non-empty string or a list of token ids")


def _chat_tokens(body: Mapping[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    total = 0
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequest("each message needs a role and content")
        content = message.get("content")
        if isinstance(content, str):
            total += prompt_tokens(content)
        elif content is not None:
            raise BadRequest("message content must be a string")
    return max(total, 1)


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
