"""Tests for loadgen.core.server_metrics: scrapes written by hand, every expected figure worked out
by hand in the comments (exact unless a tolerance is stated)."""

from __future__ import annotations

import pytest

from loadgen.core.records import RequestRecord, TokensSource
from loadgen.core.server_metrics import (
    ClientTokens,
    Scrape,
    client_tokens,
    server_figures,
    tokens_mismatch,
)

URL = "http://gpu:8000/metrics"
EXACT = ClientTokens(prompt=500, generation=1200, exact=True)
S = 1_000_000_000  # ns in a second


def scrape(t_s: float, **samples: tuple[float, ...]) -> Scrape:
    """A scrape at `t_s` seconds; sample names are given with `__` for `:`."""
    return Scrape(round(t_s * S), {name.replace("__", ":"): v for name, v in samples.items()})


def record(
    index: int,
    *,
    tokens_in: int | None = 10,
    tokens_out: int = 5,
    source: TokensSource = "server",
    error: bool = False,
) -> RequestRecord:
    return RequestRecord(
        index=index,
        t_sched_ns=0,
        t_send_ns=0,
        slot_wait_ns=0,
        t_done_ns=1,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_source=source,
        error_kind="disconnect" if error else None,
    )


# Two engines of one server (vLLM labels its series by model_name and engine).
FIRST = scrape(
    0.0,
    vllm__prompt_tokens_total=(1000.0, 200.0),
    vllm__generation_tokens_total=(5000.0, 3000.0),
    vllm__num_preemptions_total=(7.0, 0.0),
    vllm__prefix_cache_queries_total=(10_000.0, 0.0),
    vllm__prefix_cache_hits_total=(4000.0, 0.0),
    vllm__num_requests_running=(0.0, 0.0),
    vllm__num_requests_waiting=(0.0, 0.0),
    vllm__kv_cache_usage_perc=(0.0, 0.0),
    vllm__time_to_first_token_seconds_sum=(10.0, 5.0),
    vllm__time_to_first_token_seconds_count=(100.0, 50.0),
    vllm__inter_token_latency_seconds_sum=(40.0, 0.0),
    vllm__inter_token_latency_seconds_count=(2000.0, 0.0),
    vllm__e2e_request_latency_seconds_sum=(90.0, 0.0),
    vllm__e2e_request_latency_seconds_count=(150.0, 0.0),
)
MIDDLE = scrape(
    1.0,
    vllm__prompt_tokens_total=(1100.0, 300.0),
    vllm__generation_tokens_total=(5400.0, 3400.0),
    vllm__num_requests_running=(3.0, 1.0),
    vllm__num_requests_waiting=(2.0, 0.0),
    vllm__kv_cache_usage_perc=(0.25, 0.5),
)
LAST = scrape(
    3.0,
    vllm__prompt_tokens_total=(1300.0, 400.0),
    vllm__generation_tokens_total=(5700.0, 3500.0),
    vllm__num_preemptions_total=(9.0, 1.0),
    vllm__prefix_cache_queries_total=(10_500.0, 300.0),
    vllm__prefix_cache_hits_total=(4300.0, 100.0),
    vllm__num_requests_running=(2.0, 0.0),
    vllm__num_requests_waiting=(0.0, 0.0),
    vllm__kv_cache_usage_perc=(0.125, 0.0),
    vllm__time_to_first_token_seconds_sum=(10.5, 5.5),
    vllm__time_to_first_token_seconds_count=(104.0, 54.0),
    vllm__inter_token_latency_seconds_sum=(42.0, 0.0),
    vllm__inter_token_latency_seconds_count=(2100.0, 0.0),
    vllm__e2e_request_latency_seconds_sum=(94.0, 0.0),
    vllm__e2e_request_latency_seconds_count=(158.0, 0.0),
)


def test_counters_are_deltas_summed_over_engines() -> None:
    figures = server_figures(URL, [FIRST, MIDDLE, LAST], EXACT)

    assert figures.url == URL
    assert figures.scrapes == 3
    assert figures.prompt_tokens == 500  # (1300 + 400) - (1000 + 200)
    assert figures.generation_tokens == 1200  # (5700 + 3500) - (5000 + 3000)
    assert figures.preemptions == 3  # (9 + 1) - (7 + 0)
    assert figures.prefix_cache_queries == 800  # 10800 - 10000
    assert figures.prefix_cache_hits == 400  # 4400 - 4000
    assert figures.prefix_cache_hit_rate == 0.5
    assert figures.client_prompt_tokens == 500
    assert figures.client_generation_tokens == 1200
    assert figures.tokens_mismatch is None


def test_histogram_means_come_from_sum_and_count_deltas() -> None:
    figures = server_figures(URL, [FIRST, MIDDLE, LAST], EXACT)

    # TTFT: sum 16 - 15 = 1.0 s over count 158 - 150 = 8 requests.
    assert figures.ttft_mean_s == pytest.approx(0.125, abs=1e-12)
    # ITL: 2.0 s over 100 gaps; E2E: 4.0 s over 8 requests.
    assert figures.itl_mean_s == pytest.approx(0.02, abs=1e-12)
    assert figures.e2e_mean_s == pytest.approx(0.5, abs=1e-12)


def test_gauges_take_max_and_time_weighted_mean() -> None:
    figures = server_figures(URL, [FIRST, MIDDLE, LAST], EXACT)

    # running (engines summed) is 0 at 0 s, 4 at 1 s, 2 at 3 s: trapezoids 2 + 6 over 3 s.
    assert figures.running_max == 4.0
    assert figures.running_mean == pytest.approx(8 / 3, abs=1e-12)
    # waiting: 0, 2, 0: trapezoids 1 + 2 over 3 s.
    assert figures.waiting_max == 2.0
    assert figures.waiting_mean == pytest.approx(1.0, abs=1e-12)
    # a usage fraction is the busiest engine's, never the engines' sum (0.75)
    assert figures.kv_cache_usage_max == 0.5


def test_scrapes_are_taken_in_time_order() -> None:
    figures = server_figures(URL, [LAST, FIRST, MIDDLE], EXACT)

    assert figures.prompt_tokens == 500
    assert figures.running_mean == pytest.approx(8 / 3, abs=1e-12)


def test_no_histogram_observation_gives_no_mean() -> None:
    still = scrape(5.0, **{k.replace(":", "__"): v for k, v in LAST.samples.items()})

    figures = server_figures(URL, [LAST, still], EXACT)

    assert figures.ttft_mean_s is None
    assert figures.e2e_mean_s is None
    assert figures.prefix_cache_hit_rate is None  # no query
    assert figures.generation_tokens == 0


def test_one_scrape_gives_gauges_but_no_counts() -> None:
    figures = server_figures(URL, [MIDDLE], EXACT)

    assert figures.scrapes == 1
    assert figures.prompt_tokens is None
    assert figures.generation_tokens is None
    assert figures.ttft_mean_s is None
    assert figures.running_max == figures.running_mean == 4.0
    assert figures.tokens_mismatch is None  # nothing to compare


def test_absent_metrics_are_none() -> None:
    bare = [scrape(0.0, vllm__num_requests_running=(1.0,)), scrape(1.0)]

    figures = server_figures(URL, bare, EXACT)

    assert figures.running_max == 1.0
    assert figures.running_mean == 1.0  # only one scrape holds it
    for name in ("prompt_tokens", "preemptions", "prefix_cache_hit_rate", "waiting_max",
                 "kv_cache_usage_max", "ttft_mean_s", "itl_mean_s"):  # fmt: skip
        assert getattr(figures, name) is None, name


def test_counter_that_goes_back_means_a_restart() -> None:
    restarted = scrape(
        2.0,
        vllm__prompt_tokens_total=(30.0, 0.0),
        vllm__generation_tokens_total=(90.0, 0.0),
        vllm__num_preemptions_total=(0.0, 0.0),
    )

    figures = server_figures(URL, [FIRST, restarted, LAST], EXACT)

    assert figures.prompt_tokens is None
    assert figures.generation_tokens is None
    assert figures.preemptions is None
    assert figures.tokens_mismatch is not None
    assert "restart" in figures.tokens_mismatch
    assert figures.running_max == 2.0  # gauges still tell (restarted holds none)


def test_older_vllm_names_are_read() -> None:
    old = [
        scrape(
            0.0,
            vllm__gpu_prefix_cache_queries_total=(100.0,),
            vllm__gpu_prefix_cache_hits_total=(10.0,),
            vllm__gpu_cache_usage_perc=(0.1,),
            vllm__time_per_output_token_seconds_sum=(1.0,),
            vllm__time_per_output_token_seconds_count=(10.0,),
        ),
        scrape(
            1.0,
            vllm__gpu_prefix_cache_queries_total=(300.0,),
            vllm__gpu_prefix_cache_hits_total=(60.0,),
            vllm__gpu_cache_usage_perc=(0.3,),
            vllm__time_per_output_token_seconds_sum=(1.5,),
            vllm__time_per_output_token_seconds_count=(20.0,),
        ),
    ]

    figures = server_figures(URL, old, EXACT)

    assert figures.prefix_cache_queries == 200
    assert figures.prefix_cache_hits == 50
    assert figures.prefix_cache_hit_rate == pytest.approx(0.25, abs=1e-12)
    assert figures.kv_cache_usage_max == 0.3
    assert figures.itl_mean_s == pytest.approx(0.05, abs=1e-12)  # 0.5 s over 10 gaps


def test_new_names_win_over_old_ones_when_both_are_exposed() -> None:
    both = [
        scrape(0.0, vllm__kv_cache_usage_perc=(0.2,), vllm__gpu_cache_usage_perc=(0.9,),
               vllm__prefix_cache_queries_total=(0.0,), vllm__prefix_cache_hits_total=(0.0,),
               vllm__gpu_prefix_cache_queries_total=(0.0,),
               vllm__gpu_prefix_cache_hits_total=(0.0,)),
        scrape(1.0, vllm__kv_cache_usage_perc=(0.2,), vllm__gpu_cache_usage_perc=(0.9,),
               vllm__prefix_cache_queries_total=(40.0,), vllm__prefix_cache_hits_total=(10.0,),
               vllm__gpu_prefix_cache_queries_total=(40.0,),
               vllm__gpu_prefix_cache_hits_total=(30.0,)),
    ]  # fmt: skip

    figures = server_figures(URL, both, EXACT)

    assert figures.kv_cache_usage_max == 0.2
    assert figures.prefix_cache_hit_rate == 0.25


# --- the client's counts, and how they compare -------------------------------------------------


def test_client_tokens_count_every_record_failed_ones_included() -> None:
    records = [
        record(0, tokens_in=10, tokens_out=5),
        record(1, tokens_in=20, tokens_out=7),
        record(2, tokens_in=30, tokens_out=3, source="estimate", error=True),  # partial output
    ]

    counts = client_tokens(records)

    assert counts == ClientTokens(prompt=60, generation=15, exact=False)


def test_failed_record_without_output_keeps_counts_exact() -> None:
    records = [record(0), record(1, tokens_out=0, source="estimate", error=True)]

    assert client_tokens(records) == ClientTokens(prompt=20, generation=5, exact=True)


def test_tokenizer_counts_are_not_exact() -> None:
    assert not client_tokens([record(0, source="tokenizer")]).exact


def test_an_unknown_prompt_size_leaves_the_prompt_count_unknown() -> None:
    counts = client_tokens([record(0), record(1, tokens_in=None)])

    assert counts.prompt is None
    assert counts.generation == 10


@pytest.mark.parametrize(
    ("server", "client", "agree"),
    [
        (1005, 1000, True),  # 0.5 %
        (1010, 1000, True),  # 1 %, the tolerance itself
        (1011, 1000, False),  # 1.1 % and 11 tokens
        (3, 1, True),  # 2 tokens: small counts may differ by 2
        (4, 1, False),  # 3 tokens, 75 %
        (0, 0, True),
    ],
)
def test_tolerance_of_the_token_comparison(server: int, client: int, agree: bool) -> None:
    text = tokens_mismatch(None, server, ClientTokens(None, client, exact=True))

    assert (text is None) == agree


def test_mismatch_text_names_both_counts() -> None:
    text = tokens_mismatch(650, 1100, ClientTokens(prompt=500, generation=1000, exact=True))

    assert text == (
        "mismatch: generation tokens: server 1100, client 1000; "
        "prompt tokens: server 650, client 500"
    )


def test_estimated_client_counts_are_not_called_a_mismatch() -> None:
    text = tokens_mismatch(None, 1100, ClientTokens(prompt=None, generation=1000, exact=False))

    assert text == "generation tokens: server 1100, client 1000 (the client's counts are estimates)"


def test_figures_flag_a_generation_mismatch() -> None:
    figures = server_figures(URL, [FIRST, LAST], ClientTokens(500, 1000, exact=True))

    assert figures.tokens_mismatch == "mismatch: generation tokens: server 1200, client 1000"
