"""Hand-written figures that several tests read and write back."""

from __future__ import annotations

from loadgen.core.records import ServerFigures

# A scraped step whose server counted two more generated tokens than the client.
SERVER = ServerFigures(
    url="http://127.0.0.1:8000/metrics",
    scrapes=4,
    prompt_tokens=500,
    generation_tokens=20,
    client_prompt_tokens=500,
    client_generation_tokens=18,
    tokens_mismatch="the server generated 20 tokens, the client counted 18",
    prefix_cache_queries=500,
    prefix_cache_hits=125,
    prefix_cache_hit_rate=0.25,
    preemptions=3,
    running_max=7.0,
    running_mean=4.5,
    waiting_max=2.0,
    waiting_mean=0.25,
    kv_cache_usage_max=0.5,
    ttft_mean_s=0.0425,
    itl_mean_s=0.012,
    e2e_mean_s=0.25,
)
