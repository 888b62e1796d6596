"""Run a coroutine on the fastest event loop available, with room for many connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def raise_open_file_limit() -> None:
    """Lift the soft open-file limit to the hard one: each request in flight holds a socket."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on uvloop where installed, else on asyncio's default loop."""
    raise_open_file_limit()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result
