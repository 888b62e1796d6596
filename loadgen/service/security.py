"""What the service lets in: bearer tokens, allowed targets and key names, sweep ids (pure).

A service that sends load where it is told is a weapon: every request is authenticated, every
target checked against the operator's list before anything is sent, and ids that name folders
are checked before they touch the disk.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

_SWEEP_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")
_BEARER = "bearer "
# The web page's session: the token in an HttpOnly, SameSite=Strict cookie (set by
# POST /v1/session), so links to reports and the event stream work in a browser.
SESSION_COOKIE = "loadgen_token"


def _digest(token: str) -> bytes:
    """A fixed-length stand-in for a token: comparing digests takes the same time whatever the
    lengths of the two tokens."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Tokens:
    """The bearer tokens that may call the API (several, for rotation), kept as digests."""

    digests: tuple[bytes, ...]

    @classmethod
    def of(cls, tokens: Iterable[str]) -> Tokens:
        """From token texts; blank ones are dropped."""
        return cls(tuple(_digest(token) for token in (t.strip() for t in tokens) if token))

    def __bool__(self) -> bool:
        return bool(self.digests)

    def admits(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries one of the tokens (constant time)."""
        if authorization is None or authorization[: len(_BEARER)].lower() != _BEARER:
            return False
        return self.admits_token(authorization[len(_BEARER) :])

    def admits_token(self, token: str | None) -> bool:
        """Whether `token` is one of the tokens (constant time)."""
        if token is None:
            return False
        return self._holds(_digest(token.strip()))

    def admits_digest(self, digest_hex: str | None) -> bool:
        """Whether `digest_hex` is the SHA-256 of one of the tokens (a worker's join proof)."""
        try:
            given = bytes.fromhex(digest_hex or "")
        except ValueError:
            return False
        return self._holds(given)

    def _holds(self, given: bytes) -> bool:
        # Every token is compared, so the time says nothing about which one (or none) matched.
        return sum(hmac.compare_digest(given, digest) for digest in self.digests) > 0


def parse_tokens(text: str) -> list[str]:
    """Tokens from a variable or a file: one per line, or comma-separated."""
    return [token.strip() for token in re.split(r"[,\n]", text) if token.strip()]


@dataclass(frozen=True, slots=True)
class AllowList:
    """Where load may go: URL prefixes (`https://staging.example.com:8443/v1`; a bare
    `scheme://host` allows any port of it) or host patterns (`*.staging.internal`,
    `10.0.0.5:8000`)."""

    entries: tuple[str, ...]

    def allows(self, url: str) -> bool:
        """Whether `url` starts with an allowed prefix or its host matches an allowed pattern."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        host = parts.hostname.lower()
        netloc = f"{host}:{parts.port}" if parts.port else host
        return any(_matches(entry, url, host, netloc) for entry in self.entries)


def _matches(entry: str, url: str, host: str, netloc: str) -> bool:
    if "://" in entry:
        allowed = urlsplit(entry)
        if allowed.port is None and allowed.path.strip("/") == "":
            # A bare origin (scheme and host) allows that host on any port.
            return allowed.scheme == urlsplit(url).scheme and allowed.hostname == host
        prefix = entry.rstrip("/")
        return url == prefix or url.startswith(prefix + "/")
    pattern = entry.lower()
    return fnmatch.fnmatchcase(netloc if ":" in pattern else host, pattern)


def valid_sweep_id(text: str) -> bool:
    """Whether `text` is a sweep id the service made (never a path: no dots, no slashes)."""
    return _SWEEP_ID.fullmatch(text) is not None


def unknown_names(asked: Sequence[str | None], allowed: Sequence[str]) -> list[str]:
    """The API key variable names asked for that the operator did not allow (names only)."""
    return sorted({name for name in asked if name is not None and name not in allowed})
