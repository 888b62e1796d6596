"""A fake "staging" endpoint for the staging profile: HTTPS on 443, an API key required.

Runs in a container of the loadgen image, with the repository's tests/ mounted on PYTHONPATH:
tests/support/fake_openai.py answers, behind a check of `Authorization: Bearer KEY`. It holds
only the key's SHA-256 (STAGING_KEY_SHA256), never the key; GET /stats (no key) says how many
requests came with the right key and how many without it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from tests.support.fake_openai import Behaviour, FakeOpenAI

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MODEL = "meta-llama/Llama-2-7b-chat-hf"


def main() -> None:
    """Serve until stopped."""
    expected = bytes.fromhex(os.environ["STAGING_KEY_SHA256"])
    counts = {"authorized": 0, "refused": 0}

    @web.middleware
    async def require_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/stats":
            return await handler(request)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected):
            counts["refused"] += 1
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        counts["authorized"] += 1
        return await handler(request)

    fake = FakeOpenAI(Behaviour(ttft_s=0.02, gap_s=0.002, tokens_per_chunk=4), models=(MODEL,))
    fake.app.middlewares.append(require_key)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(counts)

    fake.app.router.add_get("/stats", stats)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.environ["CERT_FILE"], os.environ["KEY_FILE"])
    web.run_app(fake.app, host="0.0.0.0", port=443, ssl_context=context, access_log=None)


if __name__ == "__main__":
    main()
