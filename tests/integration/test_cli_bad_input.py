"""Bad input through cli.main: the right exit status, a clear message, never a traceback.

Exit statuses: 2 for what the user must change (flags, dataset), 1 for a server that cannot be
used (unreachable, not OpenAI-like).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration._helpers import run_cli, write_tagged_dataset
from tests.support.fake_openai import FakeOpenAI, ModelsMode, ServerThread, closed_port_url


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """A healthy fake server, so a failure below is the input's fault, not the server's."""
    with ServerThread(FakeOpenAI()) as url:
        yield url


def loadgen(url: str, out: Path, *extra: str) -> int:
    argv = ["run", "--base-url", url, "--rate", "50", "--num-requests", "6", "--trim", "1"]
    return run_cli([*argv, "--quiet", "--out", str(out), *extra])


def assert_clean_error(err: str, code: int, expected_code: int, *needles: str) -> None:
    """Exit status `expected_code`; stderr is an error message naming every needle, no trace."""
    assert code == expected_code, err
    assert "Traceback" not in err
    assert err.strip(), "no message on stderr"
    assert "error" in err.lower()
    flat = " ".join(err.split())  # the terminal may wrap long messages
    for needle in needles:
        assert needle in flat, (needle, err)


def test_unreachable_server_exits_1(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    url = closed_port_url()
    code = loadgen(url, tmp_path)
    out, err = capfd.readouterr()

    assert_clean_error(err, code, 1, "cannot reach", url.removesuffix("/v1"))
    assert out == ""
    assert not (tmp_path / "summary.json").exists()


def test_unreachable_server_error_is_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = loadgen(closed_port_url(), tmp_path)
    _, err = capfd.readouterr()

    assert code == 1
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("mode", "needle"),
    [("html_404", "HTTP 404"), ("html_200", "did not return an OpenAI model list")],
)
def test_server_without_model_list_and_no_model_exits_1(
    mode: ModelsMode, needle: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(models_mode=mode)
    with ServerThread(fake) as url:
        code = loadgen(url, tmp_path)
    _, err = capfd.readouterr()

    assert_clean_error(err, code, 1, needle)
    assert fake.seen.requests == []  # nothing was sent without a model


def test_server_without_model_list_works_with_model(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(models_mode="html_404")
    with ServerThread(fake) as url:
        code = loadgen(url, tmp_path, "--model", "fake-model")
    _, err = capfd.readouterr()

    assert code == 0, err
    assert len(fake.seen.requests) == 6


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--rate", "0"], ["--rate"]),
        (
            ["--num-requests", "100", "--trim", "50"],
            ["--num-requests: 100 requests", "trimming 50"],
        ),
        (["--max-concurrency", "0"], ["--max-concurrency"]),
        (["--ttft-timeout", "0"], ["timeout"]),
        (["--base-url", "ftp://example.com"], ["http://"]),
    ],
)
def test_bad_flags_exit_2(
    args: list[str],
    needles: list[str],
    live_url: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    code = loadgen(live_url, tmp_path, *args)
    _, err = capfd.readouterr()

    assert_clean_error(err, code, 2, *needles)


def test_sweep_with_a_zero_rate_exits_2(
    live_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(["sweep", "--base-url", live_url, "--rates", "1,0", "--out", str(tmp_path)])
    _, err = capfd.readouterr()

    assert_clean_error(err, code, 2, "--rates")


def test_missing_dataset_exits_2(
    live_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-file.jsonl"
    code = loadgen(live_url, tmp_path, "--dataset", str(missing))
    _, err = capfd.readouterr()

    assert_clean_error(err, code, 2, "no-such-file.jsonl")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"prompt": "a", "max_tokens": 4}\n{"prompt": "b", "max_tok', "not valid JSON"),
        (b'[{"prompt": "a", "max_tokens": 0}]', "max_tokens"),
        (b'{"text": "a"}\n', "prompt"),
        (b"", "no entries in the file"),
    ],
    ids=["truncated-jsonl", "zero-max-tokens", "no-prompt", "empty"],
)
def test_malformed_dataset_exits_2(
    content: bytes,
    needle: str,
    live_url: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dataset = tmp_path / "bad.jsonl"
    dataset.write_bytes(content)
    code = loadgen(live_url, tmp_path, "--dataset", str(dataset))
    _, err = capfd.readouterr()

    assert_clean_error(err, code, 2, "bad.jsonl", needle)


def test_good_dataset_runs(
    live_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The control for the dataset cases above: the same command with a good file succeeds.
    dataset = write_tagged_dataset(tmp_path / "good.jsonl", 6, 3)
    code = loadgen(live_url, tmp_path, "--dataset", str(dataset))
    _, err = capfd.readouterr()

    assert code == 0, err
    assert (tmp_path / "summary.json").is_file()
