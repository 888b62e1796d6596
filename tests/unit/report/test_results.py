"""Reading a results folder back: summary.json round-trips to the same StepSummary objects."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from loadgen.core.events import StepProgress, TargetInfo
from loadgen.core.records import RequestRecord, StepSummary
from loadgen.core.stats import summarize_step
from loadgen.export.files import ResultsWriter, summary_dict
from loadgen.report.results import ResultsError, load_results, results_folders
from tests.support.figures import SERVER

MS = 1_000_000


def write(
    out_dir: Path,
    summary: StepSummary,
    label: str = "m @ h:8000",
    sent: list[RequestRecord] | None = None,
) -> None:
    """Write one step of `sent` (default `records()`) to `out_dir` as a run's results writer
    does."""
    writer = ResultsWriter()
    writer.on_target_start(
        TargetInfo(
            name=None,
            label=label,
            model="m",
            base_url="http://h:8000/v1",
            scenario="synthetic",
            run_id="r",
            out_dir=out_dir,
            plot_title="t",
            config={"load": {"trim": summary.trim}},
        )
    )
    progress = StepProgress(0, summary.target_rate_rps, summary.num_sent, summary.trim, 0)
    writer.on_step_end(progress, summary, records() if sent is None else sent)


def records() -> list[RequestRecord]:
    """Ten streamed successes and one timeout, 100 ms apart."""
    made = [
        RequestRecord(
            index=i, t_sched_ns=i * 100 * MS, t_send_ns=i * 100 * MS + MS, slot_wait_ns=0,
            t_done_ns=i * 100 * MS + 60 * MS, t_first_ns=i * 100 * MS + 20 * MS,
            t_last_ns=i * 100 * MS + 50 * MS, tokens_in=10, tokens_out=4, tokens_source="server",
            chunk_times_ns=[i * 100 * MS + k * 10 * MS for k in (2, 3, 4, 5)], status=200,
        )
        for i in range(10)
    ]  # fmt: skip
    made.append(
        RequestRecord(
            index=10, t_sched_ns=MS * 1000, t_send_ns=MS * 1000, slot_wait_ns=0,
            t_done_ns=MS * 1500, error_kind="timeout", error="no first token",
        )
    )  # fmt: skip
    return made


@pytest.mark.parametrize("rate", [4.0, math.inf])
def test_summary_json_reads_back_to_the_same_summaries(tmp_path: Path, rate: float) -> None:
    summary = summarize_step(
        records(), step=0, target_rate_rps=rate, num_sent=11, trim=2,
        slos={"ttft": 0.05}, interrupted=False, duration_s=1.5,
    )  # fmt: skip
    write(tmp_path, summary)

    run = load_results(tmp_path)

    assert run.steps == (summary,)
    assert run.label == "m @ h:8000"
    assert run.config == {"load": {"trim": 2}}
    assert run.target["base_url"] == "http://h:8000/v1"
    assert len(run.requests) == 11
    assert run.requests[10]["error_kind"] == "timeout"


def test_reasoning_figures_and_the_servers_view_read_back(tmp_path: Path) -> None:
    thinking = [
        replace(r, t_first_answer_ns=r.t_first_ns + 10 * MS if r.t_first_ns else None,
                reasoning_tokens=1 if r.ok else None)
        for r in records()
    ]  # fmt: skip
    summary = summarize_step(
        thinking, step=0, target_rate_rps=4.0, num_sent=11, trim=2, slos={},
        interrupted=False, duration_s=1.5,
    )  # fmt: skip
    summary = replace(summary, server=SERVER)
    assert summary.trimmed.ttfa_s is not None
    assert summary.trimmed.reasoning_tokens_mean == 1.0
    write(tmp_path, summary, sent=thinking)
    run = load_results(tmp_path)
    assert run.steps == (summary,)
    assert run.requests[0]["reasoning_tokens"] == 1
    assert run.requests[0]["ttfa_s"] == pytest.approx(0.029)  # 20 + 10 ms after a 1 ms send


def test_results_written_before_reasoning_and_server_figures_still_read(tmp_path: Path) -> None:
    summary = summarize_step(
        records(), step=0, target_rate_rps=4.0, num_sent=11, trim=2, slos={},
        interrupted=False, duration_s=1.5,
    )  # fmt: skip
    write(tmp_path, summary)
    path = tmp_path / "summary.json"
    document = orjson.loads(path.read_bytes())
    for step in document["steps"]:
        for name in ("ttfa_s", "reasoning_tokens_mean", "answer_tokens_mean", "server"):
            step.pop(name)
            step["untrimmed"].pop(name, None)
    path.write_bytes(orjson.dumps(document))
    (read,) = load_results(tmp_path).steps
    assert read.server is None
    assert read.trimmed.ttfa_s is None
    assert read.trimmed.ttft_s == summary.trimmed.ttft_s


def test_the_written_label_names_the_target(tmp_path: Path) -> None:
    summary = summarize_step(
        records(), step=0, target_rate_rps=2.0, num_sent=11, trim=2,
        slos={}, interrupted=False, duration_s=1.5,
    )  # fmt: skip
    write(tmp_path, summary, label="sim h100/x/vllm")
    assert load_results(tmp_path).label == "sim h100/x/vllm"


def test_rows_past_the_size_summary_json_committed_are_left_out(tmp_path: Path) -> None:
    summary = summarize_step(
        records(), step=0, target_rate_rps=2.0, num_sent=11, trim=2,
        slos={}, interrupted=False, duration_s=1.5,
    )  # fmt: skip
    write(tmp_path, summary)
    with (tmp_path / "requests.jsonl").open("ab") as handle:
        # What a crash while appending the next step's rows could leave: whole and torn rows.
        handle.write(b'{"step": 1, "index": 0}\n{"step": 1, "ind')
    rows = load_results(tmp_path).requests
    assert [row["index"] for row in rows] == list(range(11))


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="cannot read"):
        load_results(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"steps": []}', b'{"config": {}, "steps": []}', b"[1, 2]"]
)
def test_unusable_summary_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "summary.json").write_bytes(content)
    with pytest.raises(ResultsError, match=r"summary\.json"):
        load_results(tmp_path)


def test_json_written_for_infinity_is_read_as_infinity(tmp_path: Path) -> None:
    summary = summarize_step(
        records(), step=0, target_rate_rps=math.inf, num_sent=11, trim=2,
        slos={}, interrupted=False, duration_s=1.5,
    )  # fmt: skip
    write(tmp_path, summary)
    assert (
        orjson.loads((tmp_path / "summary.json").read_bytes())["steps"][0]["target_rate_rps"]
        == "inf"
    )
    assert load_results(tmp_path).steps[0].target_rate_rps == math.inf


def test_a_folder_without_summary_stands_for_its_targets(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for name in ("mii", "vllm"):
        (run / name).mkdir(parents=True)
        (run / name / "summary.json").write_text("{}")
    (run / "notes").mkdir()  # no summary.json: not a target
    single = tmp_path / "single"
    single.mkdir()
    (single / "summary.json").write_text("{}")
    (single / "inner").mkdir()
    (single / "inner" / "summary.json").write_text("{}")
    empty = tmp_path / "empty"
    found = results_folders([run, single, empty])
    assert found == [run / "mii", run / "vllm", single, empty]


def test_a_summary_without_a_target_is_labelled_by_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "older-run"
    folder.mkdir()
    summary = summarize_step(
        records(), step=0, target_rate_rps=4.0, num_sent=11, trim=0,
        slos={}, interrupted=False, duration_s=1.5,
    )  # fmt: skip
    document = {"config": {}, "steps": [summary_dict(summary)]}
    (folder / "summary.json").write_bytes(orjson.dumps(document))
    assert load_results(folder).label == "older-run"
