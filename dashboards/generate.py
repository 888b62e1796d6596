"""Write the Grafana dashboards (JSON) from plain Python dicts: `python dashboards/generate.py`.

The JSON files beside this script are generated and checked in; a test fails when they differ
from what this script writes, or when a query names a metric nothing exports. Every query reads
the `$target` template variable (a regex over `loadgen_run_info`'s targets).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
SEL = 'target=~"$target"'
MEASURE = f'{SEL}, phase="measure"'


def query(expr: str, legend: str, *, instant: bool = False) -> dict[str, Any]:
    """One Prometheus query of a panel."""
    target: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
    if instant:
        target |= {"instant": True, "range": False, "format": "table"}
    return target


def panel(
    title: str, unit: str, queries: list[dict[str, Any]], position: tuple[int, int, int, int]
) -> dict[str, Any]:
    """A time-series panel at grid position (x, y, w, h)."""
    x, y, w, h = position
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [q | {"refId": chr(ord("A") + i)} for i, q in enumerate(queries)],
    }


def latency_quantiles(metric: str, selector: str, by: str = "") -> list[dict[str, Any]]:
    """p50 / p90 / p99 of a histogram over the rate interval."""
    group = f"le{', ' + by if by else ''}"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        query(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
            f"{prefix}{name}",
        )
        for name, q in QUANTILES
    ]


def target_variable() -> dict[str, Any]:
    """`$target`: every target a run has reported, several at once."""
    return {
        "name": "target",
        "label": "target",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(loadgen_run_info, target)", "refId": "targets"},
        "definition": "label_values(loadgen_run_info, target)",
        "includeAll": True,
        "allValue": ".+",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
    }


def step_annotations() -> list[dict[str, Any]]:
    """Markers where steps start and end: each series' value is the time (ms) to mark."""
    return [
        {
            "name": f"step {edge}",
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": color,
            "expr": f"loadgen_step_{edge}_timestamp_seconds{{{SEL}}} * 1000",
            "useValueForTime": True,
            "titleFormat": f"step {edge}: {{{{rate}}}} req/s",
            "step": "5s",
        }
        for edge, color in (("start", "green"), ("end", "red"))
    ]


def dashboard(uid: str, title: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole dashboard with the `$target` variable and step annotations."""
    return {
        "uid": uid,
        "title": title,
        "tags": ["loadgen"],
        "schemaVersion": 39,
        "editable": True,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": [target_variable()]},
        "annotations": {"list": step_annotations()},
        "panels": panels,
    }


def live() -> dict[str, Any]:
    """ "loadgen / live": what the generator is doing and seeing, while it runs."""
    panels = [
        panel("Request rate: sent vs target", "reqps", [
            query(f"loadgen_target_rate_rps{{{SEL}}}", "{{target}} target"),
            query(f"loadgen_achieved_rate_rps{{{SEL}}}", "{{target}} sent"),
        ], (0, 0, 12, 8)),
        panel("Requests in flight", "short", [
            query(f"loadgen_in_flight_requests{{{SEL}}}", "{{target}}"),
        ], (12, 0, 12, 8)),
        panel("TTFT (measure phase)", "s", latency_quantiles("loadgen_ttft_seconds", MEASURE),
              (0, 8, 12, 8)),
        panel("TPOT (measure phase)", "s", latency_quantiles("loadgen_tpot_seconds", MEASURE),
              (12, 8, 12, 8)),
        panel("ITL (measure phase)", "s", latency_quantiles("loadgen_itl_seconds", MEASURE),
              (0, 16, 12, 8)),
        panel("E2E latency (measure phase)", "s",
              latency_quantiles("loadgen_e2e_latency_seconds", MEASURE), (12, 16, 12, 8)),
        panel("Output token throughput", "short", [
            query(
                f'sum by (target) (rate(loadgen_tokens_total{{{SEL}, direction="output"}}'
                "[$__rate_interval]))",
                "{{target}} tok/s",
            ),
        ], (0, 24, 12, 8)),
        panel("Requests ended, by status", "reqps", [
            query(
                f"sum by (target, status) (rate(loadgen_requests_total{{{SEL}}}"
                "[$__rate_interval]))",
                "{{target}} {{status}}",
            ),
        ], (12, 24, 12, 8)),
        panel("Dispatch and event-loop lag", "s", [
            query(f"loadgen_dispatch_lag_seconds{{{SEL}}}", "{{target}} dispatch p99"),
            query(f"loadgen_event_loop_lag_seconds{{{SEL}}}", "{{target}} event loop"),
            query(f"loadgen_shard_dispatch_lag_seconds{{{SEL}}}",
                  "{{target}} shard {{shard}} dispatch p99"),
        ], (0, 32, 24, 8)),
        panel("Time to first answer token, after reasoning (measure phase)", "s",
              latency_quantiles("loadgen_ttfa_seconds", MEASURE), (0, 40, 12, 8)),
        panel("Output tokens/s, and the reasoning part of them", "short", [
            query(
                f'sum by (target) (rate(loadgen_tokens_total{{{SEL}, direction="output"}}'
                "[$__rate_interval]))",
                "{{target}} output",
            ),
            query(
                f"sum by (target) (rate(loadgen_reasoning_tokens_total{{{SEL}}}"
                "[$__rate_interval]))",
                "{{target}} reasoning",
            ),
        ], (12, 40, 12, 8)),
    ]  # fmt: skip
    return dashboard("loadgen-live", "loadgen / live", panels)


def sweep_panel(
    title: str, unit: str, metric: str, position: tuple[int, int, int, int], extra: str = ""
) -> dict[str, Any]:
    """A bar chart of a step gauge (`extra` adds label matchers) against the target rate."""
    x, y, w, h = position
    return {
        "type": "barchart",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"xField": "rate", "legend": {"displayMode": "list", "placement": "bottom"}},
        "transformations": [
            {"id": "labelsToFields", "options": {"mode": "columns"}},
            {
                "id": "groupingToMatrix",
                "options": {"columnField": "target", "rowField": "rate", "valueField": "Value"},
            },
            {
                "id": "convertFieldType",
                "options": {
                    "conversions": [{"targetField": "rate\\target", "destinationType": "number"}]
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "rate\\target"}]}},
        ],
        "targets": [
            query(f"{metric}{{{SEL}{extra}}}", "{{target}}", instant=True) | {"refId": "A"}
        ],
    }


def sweep() -> dict[str, Any]:
    """ "loadgen / sweep": the paper's Figure 1 from the step gauges, one series per target."""
    panels = [
        sweep_panel("Sequence throughput vs request rate", "reqps",
                    "loadgen_step_sequence_throughput_rps", (0, 0, 8, 10)),
        sweep_panel("Output token throughput vs request rate", "short",
                    "loadgen_step_output_token_throughput_tps", (8, 0, 8, 10)),
        sweep_panel("Mean per-token latency vs request rate", "s",
                    "loadgen_step_per_token_latency_seconds", (16, 0, 8, 10), ', stat="mean"'),
    ]  # fmt: skip
    return dashboard("loadgen-sweep", "loadgen / sweep", panels)


def server_vllm() -> dict[str, Any]:
    """ "server / vLLM": the server's own metrics beside the client's view of the same things."""
    model = 'model_name=~".+"'
    panels = [
        panel("Running and waiting requests (server)", "short", [
            query(f"sum by (model_name) (vllm:num_requests_running{{{model}}})",
                  "{{model_name}} running"),
            query(f"sum by (model_name) (vllm:num_requests_waiting{{{model}}})",
                  "{{model_name}} waiting"),
            query(f"sum(loadgen_in_flight_requests{{{SEL}}})", "client in flight"),
        ], (0, 0, 12, 8)),
        panel("KV cache usage (server)", "percentunit", [
            query(f"vllm:kv_cache_usage_perc{{{model}}}", "{{model_name}}"),
        ], (12, 0, 12, 8)),
        panel("TTFT p99: server vs client", "s", [
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(vllm:time_to_first_token_seconds_bucket{{{model}}}[$__rate_interval])))",
                  "server"),
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(loadgen_ttft_seconds_bucket{{{SEL}}}[$__rate_interval])))", "client"),
        ], (0, 8, 12, 8)),
        panel("Inter-token latency p99: server vs client", "s", [
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(vllm:inter_token_latency_seconds_bucket{{{model}}}[$__rate_interval])))",
                  "server"),
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(loadgen_itl_seconds_bucket{{{SEL}}}[$__rate_interval])))", "client"),
        ], (12, 8, 12, 8)),
        panel("E2E latency p99: server vs client", "s", [
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(vllm:e2e_request_latency_seconds_bucket{{{model}}}[$__rate_interval])))",
                  "server"),
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(loadgen_e2e_latency_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                  "client"),
        ], (0, 16, 12, 8)),
        panel("Generated tokens/s and preemptions/s (server)", "short", [
            query(f"sum(rate(vllm:generation_tokens_total{{{model}}}[$__rate_interval]))",
                  "server tok/s"),
            query(f'sum(rate(loadgen_tokens_total{{{SEL}, direction="output"}}[$__rate_interval]))',
                  "client tok/s"),
            query(f"sum(rate(vllm:num_preemptions_total{{{model}}}[$__rate_interval]))",
                  "preemptions/s"),
        ], (12, 16, 12, 8)),
        panel("Prefix-cache hit rate (server)", "percentunit", [
            query(f"sum(rate(vllm:prefix_cache_hits_total{{{model}}}[$__rate_interval])) / "
                  f"sum(rate(vllm:prefix_cache_queries_total{{{model}}}[$__rate_interval]))",
                  "hits / queried prompt tokens"),
        ], (0, 24, 12, 8)),
        panel("TTFT and time to first answer p99 (client)", "s", [
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(loadgen_ttft_seconds_bucket{{{SEL}}}[$__rate_interval])))", "TTFT"),
            query("histogram_quantile(0.99, sum by (le) "
                  f"(rate(loadgen_ttfa_seconds_bucket{{{SEL}}}[$__rate_interval])))", "TTFA"),
        ], (12, 24, 12, 8)),
    ]  # fmt: skip
    return dashboard("server-vllm", "server / vLLM", panels)


DASHBOARDS = {
    "loadgen-live.json": live,
    "loadgen-sweep.json": sweep,
    "server-vllm.json": server_vllm,
}


def render(build: Any) -> str:
    """A dashboard as the checked-in JSON text."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(out: Path = HERE) -> int:
    """Write every dashboard into `out`."""
    for name, build in DASHBOARDS.items():
        (out / name).write_text(render(build))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))
