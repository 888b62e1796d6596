"""`loadgen serve`: where the control API listens, what it keeps, and what it may point load at.

The API tokens themselves are no setting: they come from LOADGEN_API_TOKEN or the file that
`api_token_file` names, and are never shown.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from loadgen.config.cluster import LOCUST_PORT
from loadgen.config.types import Opt, Section

TOKEN_ENV = "LOADGEN_API_TOKEN"
TOKEN_FILE_ENV = "LOADGEN_API_TOKEN_FILE"  # the api_token_file setting's variable


def client_token() -> str:
    """The token a client of the service (loadgen remote, a worker) sends: the first of
    LOADGEN_API_TOKEN, else the first in the file LOADGEN_API_TOKEN_FILE names ("": none)."""
    token = os.environ.get(TOKEN_ENV, "").split(",")[0].strip()
    path = os.environ.get(TOKEN_FILE_ENV, "").strip()
    if token or not path:
        return token
    with contextlib.suppress(OSError):
        return next(iter(Path(path).read_text().replace(",", " ").split()), "")
    return ""


def _names(value: Any) -> Any:
    """A comma-separated text as a list of its items (lists pass through)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


Names = Annotated[tuple[str, ...], BeforeValidator(_names)]


class ServiceConfig(Section):
    """The sweep service: its address, its queue and results, and the operator's limits."""

    host: str = Field("127.0.0.1", description="address to serve the API and page on")
    port: int = Field(8089, ge=0, le=65535, description="port of the API and page (0: any)")
    results_dir: Annotated[Path, Opt(name="results", metavar="DIR")] = Field(
        Path("results/service"), description="where each sweep's state and results are kept"
    )
    queue_size: int = Field(16, ge=1, description="sweeps that may wait behind the running one")
    api_token_file: Annotated[Path | None, Opt(metavar="FILE")] = Field(
        None, description=f"file of API tokens, one per line (or set {TOKEN_ENV})"
    )
    allowed_targets: Names = Field(
        (),
        description="URL prefixes or host patterns (*.staging.internal) load may be sent to; "
        "empty: none",
    )
    allowed_key_names: Names = Field(
        (), description="names of the variables of API keys that sweeps may use"
    )
    max_rate_rps: Annotated[float | None, Opt(name="max_rate", metavar="R")] = Field(
        None, gt=0, allow_inf_nan=False, description="ceiling on the request rate of any sweep"
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted")
    grafana_url: str | None = Field(None, description="where the page links the dashboards")
    boot_sweep: Annotated[Path | None, Opt(metavar="FILE")] = Field(
        None, description="a sweep file to queue when the service starts"
    )
    workers_port: Annotated[int | None, Opt(metavar="PORT")] = Field(
        None,
        ge=0,
        le=65535,
        description=f"accept `loadgen worker`s on PORT (Locust's is {LOCUST_PORT}); they send "
        "the sweeps while any is joined; unset: no workers",
    )
    workers_host: str = Field("*", description="the address workers connect to (*: every one)")
    processes: int | None = Field(
        None,
        ge=1,
        description="with no worker joined, send each sweep from N shard processes here; unset: "
        "from the service's own process",
    )
