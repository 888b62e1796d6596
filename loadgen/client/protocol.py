"""The OpenAI wire protocol, pure: base URLs, request bodies, and what a response chunk carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import orjson

from loadgen.core.records import RequestSpec

Endpoint = Literal["completions", "chat", "responses"]
ENDPOINT_PATHS: Mapping[Endpoint, str] = {
    "completions": "/completions",
    "chat": "/chat/completions",
    "responses": "/responses",
}
# The keys that carry reasoning text in a streamed chat chunk: vLLM's `reasoning_content` and
# the newer `reasoning`, compact and with a space after the colon.
REASONING_MARKERS: tuple[bytes, ...] = (
    b'"reasoning_content":"',
    b'"reasoning_content": "',
    b'"reasoning":"',
    b'"reasoning": "',
)
# The keys that carry output text in a streamed chunk, as they appear on the wire: compact
# (vLLM, pydantic) and with a space after the colon (Python's json.dumps). Responses API events
# differ in their sequence numbers, so none of them fits another's template: no markers.
TEXT_MARKERS: Mapping[Endpoint, tuple[bytes, ...]] = {
    "completions": (b'"text":"', b'"text": "'),
    "chat": (b'"content":"', b'"content": "', *REASONING_MARKERS),
    "responses": (),
}
# Responses API stream events that carry output text: answer, and reasoning.
_ANSWER_EVENT = "response.output_text.delta"
_REASONING_EVENT = "response.reasoning_text.delta"
# Responses API stream events that hold the finished response (and its usage).
_FINAL_EVENTS = ("response.completed", "response.incomplete")
_BACKSLASH = ord("\\")


def normalize_base_url(url: str) -> str:
    """The OpenAI SDK form of `url` (`http://host:port/v1`); a URL with no path gets `/v1`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"base URL must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"base URL has no host: {url!r}")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ValueError(f"base URL has an invalid port: {url!r}") from None
    if parts.username or parts.password:
        raise ValueError(
            "base URL must not hold credentials (they would be logged); "
            "use --api-key-env or --header instead"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"base URL must not have a query or fragment: {url!r}")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """How each request body is built; `extra_body` fields are merged in last.

    `optional` holds optional body fields by wire name (`ignore_eos`, `temperature`, ...),
    sent when not None; `omit` names optional fields the server rejected: no longer sent.
    """

    endpoint: Endpoint = "completions"
    model: str = ""
    stream: bool = True
    include_usage: bool = True
    optional: Mapping[str, Any] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    omit: frozenset[str] = frozenset()


def _messages(spec: RequestSpec) -> list[Mapping[str, str]]:
    """The spec's chat messages: its own, or its prompt as one user message."""
    if spec.messages is not None:
        return list(spec.messages)
    return [{"role": "user", "content": spec.prompt}]


def build_body(spec: RequestSpec, options: RequestOptions) -> bytes:
    """The JSON body (bytes) of one request."""
    body: dict[str, Any] = {"model": options.model}
    if options.endpoint == "responses":
        body["input"] = spec.prompt if spec.messages is None else _messages(spec)
        body["max_output_tokens"] = spec.max_tokens
    elif options.endpoint == "chat":
        body["max_tokens"] = spec.max_tokens
        body["messages"] = _messages(spec)
    else:
        body["max_tokens"] = spec.max_tokens
        body["prompt"] = spec.prompt
    body["stream"] = options.stream
    # The Responses API reports usage in its final event unasked.
    usage = options.stream and options.include_usage and options.endpoint != "responses"
    optional = {"stream_options": {"include_usage": True} if usage else None, **options.optional}
    body.update(
        {
            key: value
            for key, value in optional.items()
            if value is not None and key not in options.omit
        }
    )
    body.update(options.extra_body)
    return orjson.dumps(body)


# Optional fields a server may refuse (transformers serve answers 422 to `ignore_eos`).
DROPPABLE_FIELDS = ("stream_options", "ignore_eos", "min_tokens", "top_k", "top_p")


def rejected_field(status: int, detail: str, body: bytes) -> str | None:
    """The optional field of `body` that a 400/422 answer's `detail` names, if any."""
    if status not in (400, 422):
        return None
    sent = orjson.loads(body)
    for name in DROPPABLE_FIELDS:
        # Quoted as Python (pydantic), JSON (FastAPI's `loc`), or JSON inside a JSON string.
        quoted = (f"'{name}'", f'"{name}"', f'\\"{name}\\"')
        if name in sent and any(form in detail for form in quoted):
            return name
    return None


def chunk_template(payload: bytes, markers: tuple[bytes, ...]) -> tuple[bytes, bytes] | None:
    """The bytes around the text value of a decoded token chunk, or None if not plainly there.

    Later chunks of the same stream that are these bytes around another quote-free text are
    the same kind of chunk (`fits_template`), so they need no decoding.
    """
    found = [(payload.find(marker), marker) for marker in markers]
    hits = [(at, marker) for at, marker in found if at >= 0]
    if len(hits) != 1 or sum(payload.count(marker) for marker in markers) != 1:
        return None
    at, marker = hits[0]
    text_start = at + len(marker)
    text_end = payload.find(b'"', text_start)
    if text_end <= text_start or payload[text_end - 1] == _BACKSLASH:
        return None  # empty text, or a quote inside the text: no template to trust
    return payload[:text_start], payload[text_end:]


def is_reasoning_template(template: tuple[bytes, bytes]) -> bool:
    """True when the chunks that fit `template` carry reasoning text rather than answer text."""
    return template[0].endswith(REASONING_MARKERS)


def fits_template(payload: bytes, template: tuple[bytes, bytes]) -> bool:
    """True when `payload` is `template` around a non-empty text with no quote or end escape."""
    prefix, suffix = template
    text_end = len(payload) - len(suffix)
    return (
        text_end > len(prefix)
        and payload.startswith(prefix)
        and payload.endswith(suffix)
        and payload.find(b'"', len(prefix), text_end) < 0
        and payload[text_end - 1] != _BACKSLASH  # it would escape the closing quote
    )


def count_template_events(data: bytes, template: tuple[bytes, bytes]) -> int:
    """k when `data` is exactly k whole SSE events `data: <prefix><text><suffix>`, else 0.

    The whole-read form of `fits_template`, in a few passes over the bytes: each event one
    line, starting with the prefix and ending with the suffix, no quote in any text, no text
    empty or ending in a backslash. Meant for a read that starts on an event boundary.
    """
    prefix, suffix = template
    count = data.count(b"\n\n")
    quotes = prefix.count(b'"') + suffix.count(b'"')
    if (
        count
        and data.endswith(b"\n\n")
        and data.startswith(b"data: " + prefix)
        and data.count(b"\n") == 2 * count
        and data.count(b"\n\ndata: " + prefix) == count - 1
        and data.count(suffix + b"\n\n") == count
        and data.count(b'"') == quotes * count
        and prefix + suffix not in data
        # The prefix ends and the suffix starts with the text's quotes; sharing one would hide it.
        and prefix + suffix[1:] not in data
        and b"\\" + suffix not in data
    ):
        return count
    return 0


def output_parts(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(answer, reasoning) text of a completion or chat chunk, a Responses API event, or a whole
    response of either API; '' where none."""
    kind = obj.get("type")
    if kind == _ANSWER_EVENT:
        return str(obj.get("delta") or ""), ""
    if kind == _REASONING_EVENT:
        return "", str(obj.get("delta") or "")
    if obj.get("object") == "response":
        return _output_items(obj.get("output"))
    choices = obj.get("choices")
    if not choices or kind is not None:
        return "", ""
    choice = choices[0]
    text = choice.get("text")
    if text:
        return str(text), ""
    for key in ("delta", "message"):
        part = choice.get(key)
        if part:
            reasoning = part.get("reasoning_content") or part.get("reasoning") or ""
            return str(part.get("content") or ""), str(reasoning)
    return "", ""


def _output_items(items: Any) -> tuple[str, str]:
    """(answer, reasoning) text of a whole Responses API response's `output` items."""
    texts: dict[str, list[str]] = {"message": [], "reasoning": []}
    for item in items if isinstance(items, list) else ():
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind not in texts:
            continue
        for content in item.get("content") or ():
            if isinstance(content, Mapping) and content.get("type") in _TEXT_PARTS:
                texts[kind].append(str(content.get("text") or ""))
    return "".join(texts["message"]), "".join(texts["reasoning"])


_TEXT_PARTS = ("output_text", "reasoning_text")


class Usage(NamedTuple):
    """Token counts a response's usage gives; None where it does not say."""

    prompt: int | None
    completion: int | None
    reasoning: int | None = None
    cached: int | None = None


def usage_of(obj: Mapping[str, Any]) -> Usage:
    """The tokens an object's usage counts: prompt, completion, reasoning and cached prompt.

    Chat and completions name them `prompt_tokens`, `completion_tokens`,
    `completion_tokens_details.reasoning_tokens` and `prompt_tokens_details.cached_tokens`; the
    Responses API `input_tokens`, `output_tokens` and the `output_tokens_details` and
    `input_tokens_details` of its final event's response.
    """
    usage = obj.get("usage")
    if not usage and obj.get("type") in _FINAL_EVENTS:
        response = obj.get("response")
        usage = response.get("usage") if isinstance(response, Mapping) else None
    if not usage or not isinstance(usage, Mapping):
        return Usage(None, None)
    return Usage(
        _count(usage.get("prompt_tokens", usage.get("input_tokens"))),
        _count(usage.get("completion_tokens", usage.get("output_tokens"))),
        _detail(usage, ("completion_tokens_details", "output_tokens_details"), "reasoning_tokens"),
        _detail(usage, ("prompt_tokens_details", "input_tokens_details"), "cached_tokens"),
    )


def _detail(usage: Mapping[str, Any], names: tuple[str, str], key: str) -> int | None:
    """`key` of the first of the `names` details objects `usage` holds."""
    details = usage.get(names[0]) or usage.get(names[1])
    return _count(details.get(key)) if isinstance(details, Mapping) else None


def _count(value: Any) -> int | None:
    """`value` when it is a token count (an int, not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def error_of(obj: Mapping[str, Any]) -> str | None:
    """The message of an error object sent in place of a chunk, or None."""
    error = obj.get("error")
    if error:
        if isinstance(error, Mapping):
            return str(error.get("message") or error)
        return str(error)
    if obj.get("object") == "error" or obj.get("type") == "error":
        return str(obj.get("message") or "error object")
    if obj.get("type") == "response.failed":
        response = obj.get("response")
        failure = response.get("error") if isinstance(response, Mapping) else None
        if isinstance(failure, Mapping):
            return str(failure.get("message") or failure)
        return "response failed"
    return None


def model_ids(obj: Any) -> list[str]:
    """The model ids of a `GET /v1/models` response; ValueError when it is not that shape."""
    data = obj.get("data") if isinstance(obj, Mapping) else None
    if not isinstance(data, list):
        raise ValueError("response has no 'data' list of models")
    return [str(entry["id"]) for entry in data if isinstance(entry, Mapping) and "id" in entry]


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced by '***'."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
