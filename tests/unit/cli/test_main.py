"""Tests for loadgen.cli.main and output: the commands, and usage errors as one line, exit 2."""

from __future__ import annotations

import pytest

from loadgen.cli import main
from loadgen.version import __version__


def argparse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The stderr of `loadgen ARGV`, which argparse must refuse with exit 2."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"loadgen {__version__}\n"


def test_help_lists_the_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    commands = "run,sweep,simulate,master,capacity,worker,serve,remote,sim,dataset,report,compare"
    assert "{" + commands + ",config}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "loadgen: error: the following arguments are required: command (see --help)\n"),
        (
            ["bench"],
            "loadgen: error: argument command: invalid choice: 'bench' (choose from 'run', "
            "'sweep', 'simulate', 'master', 'capacity', 'worker', 'serve', 'remote', 'sim', "
            "'dataset', 'report', 'compare', 'config') (see --help)\n",
        ),
        (["run", "--bogus"], "loadgen: error: unrecognized arguments: --bogus (see --help)\n"),
        (
            ["run", "--rate"],
            "loadgen run: error: argument --rate: expected one argument (see --help)\n",
        ),
        (
            ["report"],
            "loadgen report: error: the following arguments are required: DIR (see --help)\n",
        ),
        (
            ["dataset", "describe"],
            "loadgen dataset describe: error: the following arguments are required: SPEC "
            "(see --help)\n",
        ),
    ],
)
def test_parse_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert argparse_error(argv, capsys) == message
