"""A server's Prometheus metrics page, scraped around each step: one small GET, parsed by
prometheus-client into a `Scrape`, and `StepWatch`, which scrapes one step from start to end."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from time import perf_counter_ns
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadgen.client.openai import ServerProbeError
from loadgen.client.protocol import redact
from loadgen.core.records import RequestRecord, ServerFigures
from loadgen.core.server_metrics import (
    VLLM_PREFIX,
    WANTED,
    Scrape,
    client_tokens,
    server_figures,
)
from loadgen.version import __version__

# Seconds between the scrapes taken while a step runs (besides one at its start and its end).
SCRAPE_INTERVAL_S = 2.0
# Seconds one scrape may take, connecting included.
SCRAPE_TIMEOUT_S = 5.0
# A metrics page larger than this is refused (vLLM's is some 100 kB).
_MAX_PAGE_BYTES = 16 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}


class MetricsScrapeError(Exception):
    """A metrics page could not be fetched or parsed; the message says why."""


class MetricsProbeError(ServerProbeError):
    """The metrics URL the user gave serves no vLLM metrics."""


def metrics_url(base_url: str) -> str:
    """Where a vLLM-style server serves its metrics: its base URL's origin and `/metrics`."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))


def same_origin(url: str, other: str) -> bool:
    """Whether two URLs share scheme, host and port (credentials may go to both)."""
    a, b = urlsplit(url), urlsplit(other)
    if a.scheme != b.scheme or (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    default = _DEFAULT_PORTS.get(a.scheme)
    return (a.port or default) == (b.port or default)


def shown_url(url: str) -> str:
    """`url` as messages and results show it: without any user or password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def wanted_lines(text: str) -> str:
    """The sample lines of an exposition whose sample name is one `WANTED` (comments dropped).

    vLLM's page is mostly histogram buckets: parsing only the lines needed keeps a scrape to
    about a millisecond of the event loop, where the pacer runs.
    """
    kept = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        end = line.find("{")
        name = line[:end] if end >= 0 else line.partition(" ")[0]
        if name in WANTED:
            kept.append(line)
    return "\n".join(kept) + "\n"


def parse_samples(text: str) -> dict[str, tuple[float, ...]]:
    """Every label set's value of each wanted sample in an exposition (MetricsScrapeError)."""
    found: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families(wanted_lines(text)):
            for sample in family.samples:
                found.setdefault(sample.name, []).append(float(sample.value))
    except (ValueError, TypeError, IndexError) as exc:
        raise MetricsScrapeError(f"not Prometheus text: {exc}") from None
    return {name: tuple(values) for name, values in found.items()}


def family_names(text: str) -> list[str]:
    """The name of every metric family of an exposition (MetricsScrapeError when not one)."""
    try:
        return [family.name for family in text_string_to_metric_families(text)]
    except (ValueError, TypeError, IndexError) as exc:
        raise MetricsScrapeError(f"not Prometheus text: {exc}") from None


class MetricsScraper:
    """GETs one metrics page over a session of its own; `headers` go with every GET."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = SCRAPE_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.shown_url = shown_url(url)
        self._headers = {
            "User-Agent": f"loadgen/{__version__}",
            "Accept": "text/plain",
            **(headers or {}),
        }
        self._secrets = tuple(value for value in (headers or {}).values() if value)
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MetricsScraper:
        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape(self) -> Scrape:
        """The page's wanted samples, timed (perf_counter_ns) when it was read."""
        text = await self.page()
        return Scrape(perf_counter_ns(), parse_samples(text))

    async def probe(self) -> bool:
        """Whether the page holds vLLM metrics (MetricsScrapeError when it cannot be read)."""
        return any(name.startswith(VLLM_PREFIX) for name in family_names(await self.page()))

    async def page(self) -> str:
        """The metrics page's text; MetricsScrapeError on any failure (redirects included)."""
        if self._session is None:
            raise RuntimeError("MetricsScraper is used outside 'async with'")
        try:
            async with self._session.get(self.url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise MetricsScrapeError(f"HTTP {resp.status}")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > _MAX_PAGE_BYTES:
                        raise MetricsScrapeError(f"the page is over {_MAX_PAGE_BYTES >> 20} MiB")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            text = str(exc) or f"no answer in {self._timeout_s:g} s"
            why = redact(f"{type(exc).__name__}: {text}", self._secrets)
            raise MetricsScrapeError(why) from None
        return body.decode("utf-8", errors="replace")


class StepWatch:
    """One step's scrapes: at its start (entering), every `interval_s` while it runs (a
    background task), and at its end (`figures`). A failed scrape is counted, never raised."""

    def __init__(self, scraper: MetricsScraper, interval_s: float | None = None) -> None:
        self._scraper = scraper
        self._interval_s = SCRAPE_INTERVAL_S if interval_s is None else interval_s
        self.scrapes: list[Scrape] = []
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StepWatch:
        await self._take()
        self._task = asyncio.create_task(self._every_interval())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def figures(self, records: Sequence[RequestRecord]) -> ServerFigures | None:
        """The last scrape, then the step's figures beside the client's `records`; None when
        no scrape worked."""
        await self._stop()
        await self._take()
        if not self.scrapes:
            return None
        return server_figures(self._scraper.shown_url, self.scrapes, client_tokens(records))

    def warning(self) -> str | None:
        """What to tell about failed scrapes, None when every one worked."""
        if not self.failures:
            return None
        tried = len(self.failures) + len(self.scrapes)
        rest = "figures from the rest" if self.scrapes else "no server figures"
        return (
            f"{len(self.failures)} of {tried} scrapes of {self._scraper.shown_url} failed "
            f"(last: {self.failures[-1]}); {rest}"
        )

    async def _take(self) -> None:
        try:
            self.scrapes.append(await self._scraper.scrape())
        except MetricsScrapeError as exc:
            self.failures.append(str(exc))

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self._take()

    async def _stop(self) -> None:
        """End the background scrapes (one in flight is abandoned)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
