"""Tests for loadgen.cli.flags: one flag per model field, help from the field, values as given."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from pydantic import Field

from loadgen.cli import main
from loadgen.cli.flags import add_flags, command_flags, flag_source
from loadgen.cli.output import Parser
from loadgen.config import resolve
from loadgen.config.sources import option_fields
from loadgen.config.types import Opt, Section


class Knobs(Section):
    """A small section whose fields show each kind of flag."""

    level: int = Field(3, ge=0, description="how hard to push, 50% at most")
    enabled: bool = Field(True, description="use the knobs")
    verbose: bool = Field(False, description="say more")
    maybe: bool | None = Field(None, description="a third way")
    title: Annotated[str | None, Opt(name="label", metavar="TEXT")] = Field(
        None, description="a label"
    )


class Panel(Section):
    """A model with one section."""

    knobs: Knobs = Field(default_factory=Knobs)


def panel_parser() -> Parser:
    parser = Parser(prog="panel")
    add_flags(parser, command_flags(Panel))
    return parser


def help_entries(text: str) -> dict[str, str]:
    """Each option of a --help text (printed one entry per line or two) by its first flag."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            entries[current] = " ".join(line.split())
        elif current is not None and line.startswith("    "):
            entries[current] += " " + " ".join(line.split())
        else:
            current = None
    return entries


# Settings of `loadgen master` alone: `sweep` sends from this host.
MASTER_ONLY = ["cluster.expect_workers", "cluster.master_bind_host", "cluster.master_bind_port"]
CAPACITY_ONLY = [
    "capacity.slos",
    "capacity.resolution",
    "capacity.max_steps",
    "capacity.max_scale",
    "capacity.start_rate_rps",
]


def sweep_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str = "sweep"
) -> str:
    """`loadgen sweep --help` (or another command's), printed wide enough that nothing wraps."""
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    return capsys.readouterr().out


# --- flags of a model ---------------------------------------------------------------------------


def test_flag_names_come_from_fields_and_options() -> None:
    flags = command_flags(Panel)
    assert [(flag.flag, flag.option.path) for flag in flags] == [
        ("--level", ("knobs", "level")),
        ("--no-enabled", ("knobs", "enabled")),
        ("--verbose", ("knobs", "verbose")),
        ("--maybe", ("knobs", "maybe")),
        ("--no-maybe", ("knobs", "maybe")),
        ("--label", ("knobs", "title")),
    ]


def test_include_and_renames_choose_the_flags() -> None:
    flags = command_flags(
        Panel,
        lambda path: path[1] in ("level", "title"),
        renames={("knobs", "level"): ("--low", "--high")},
    )
    assert [flag.flag for flag in flags] == ["--low", "--high", "--label"]


def test_given_flags_reach_the_model_as_text() -> None:
    flags = command_flags(Panel)
    args = panel_parser().parse_args(
        ["--level", "5", "--no-enabled", "--verbose", "--no-maybe", "--label", "x"]
    )
    source = flag_source(args, flags)
    assert dict(source.values) == {
        ("knobs", "level"): "5",
        ("knobs", "enabled"): False,
        ("knobs", "verbose"): True,
        ("knobs", "maybe"): False,
        ("knobs", "title"): "x",
    }
    assert dict(source.labels) == {
        ("knobs", "level"): "--level",
        ("knobs", "enabled"): "--no-enabled",
        ("knobs", "verbose"): "--verbose",
        ("knobs", "maybe"): "--no-maybe",  # each of the pair names a value it gave
        ("knobs", "title"): "--label",
    }
    knobs = resolve([source], Panel).config.knobs
    assert (knobs.level, knobs.enabled, knobs.verbose, knobs.maybe, knobs.title) == (
        5,
        False,
        True,
        False,
        "x",
    )


def test_flags_not_given_leave_the_model_its_defaults() -> None:
    source = flag_source(panel_parser().parse_args([]), command_flags(Panel))
    assert dict(source.values) == {}
    assert resolve([source], Panel).config.knobs == Knobs()


def test_tri_state_flag_takes_both_forms() -> None:
    flags = command_flags(Panel)
    source = flag_source(panel_parser().parse_args(["--maybe"]), flags)
    assert dict(source.values) == {("knobs", "maybe"): True}
    assert dict(source.labels) == {("knobs", "maybe"): "--maybe"}


def test_help_is_the_description_default_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    entries = help_entries(panel_parser().format_help())
    assert (
        entries["--level"]
        == "--level LEVEL how hard to push, 50% at most (default: 3) [knobs.level]"
    )
    assert entries["--no-enabled"] == "--no-enabled do not use the knobs [knobs.enabled]"
    assert entries["--verbose"] == "--verbose say more [knobs.verbose]"
    assert entries["--maybe"] == "--maybe a third way [knobs.maybe]"
    assert entries["--no-maybe"] == "--no-maybe the opposite of --maybe [knobs.maybe]"
    assert entries["--label"] == "--label TEXT a label [knobs.title]"


def test_two_flags_of_one_field_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    parser = Parser(prog="panel")
    add_flags(parser, command_flags(Panel, renames={("knobs", "level"): ("--low", "--high")}))
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--low", "1", "--high", "2"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "panel: error: argument --high: not allowed with argument --low (see --help)\n"
    )


# --- the flags of `loadgen sweep` ---------------------------------------------------------------


def test_every_option_of_the_model_has_a_sweep_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths_in_help = {
        match.group(1)
        for entry in help_entries(sweep_help(capsys, monkeypatch)).values()
        if (match := re.search(r"\[([a-z_.]+)\]$", entry))
    }
    options = [".".join(option.path) for option in option_fields()]
    assert len(options) == 79
    missing = [path for path in options if path not in paths_in_help]
    assert sorted(missing) == sorted(MASTER_ONLY + CAPACITY_ONLY)
    master = {
        match.group(1)
        for entry in help_entries(sweep_help(capsys, monkeypatch, "master")).values()
        if (match := re.search(r"\[([a-z_.]+)\]$", entry))
    }
    assert [path for path in options if path not in master] == [
        "cluster.processes",
        *CAPACITY_ONLY,
    ]


def test_capacity_offers_the_search_settings_for_rates_and_goodput_slos(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = help_entries(sweep_help(capsys, monkeypatch, "capacity"))
    assert entries["--slo"].endswith("[capacity.slos]")
    assert entries["--resolution"].endswith("[capacity.resolution]")
    assert entries["--start-rate"].endswith("[capacity.start_rate_rps]")
    assert "--rates" not in entries
    assert "--steps" not in entries
    assert "--repeats" not in entries
    assert "--capacity-slo" not in entries
    assert "--expect-workers" not in entries
    assert entries["--processes"].endswith("[cluster.processes]")


def test_sweep_offers_these_flags(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = help_entries(sweep_help(capsys, monkeypatch))
    expected = {
        "--base-url": "[target.base_url]",
        "--header": "[target.headers]",
        "--no-stream": "[target.stream]",
        "--ignore-eos": "[target.ignore_eos]",
        "--extra-body": "[target.extra_body]",
        "--connect-timeout": "[target.connect_timeout_s]",
        "--rates": "[load.rates_rps]",
        "--rate-range": "[load.rates_rps]",
        "--duration": "[load.duration_s]",
        "--slo": "[load.slos]",
        "--prompt-template": "[workload.prompt_template]",
        "--out": "[output.out_dir]",
        "--metrics-port": "[metrics.port]",
        "--pushgateway": "[metrics.pushgateway]",
        "--sim-model": "[sim.model]",
        "--sim-config": "[sim.config_file]",
    }
    for flag, path in expected.items():
        assert entries[flag].endswith(path), entries[flag]
    assert "--rate" not in entries
    assert "--name" not in entries
    assert "--targets" not in entries


def test_help_texts_are_the_field_descriptions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = help_entries(sweep_help(capsys, monkeypatch))
    assert entries["--trim"] == (
        "--trim TRIM requests left out at each end of a step (send order) (default: 100) "
        "[load.trim]"
    )
    assert entries["--api-key-env"] == (
        "--api-key-env VAR environment variable holding the API key (sent as a Bearer token) "
        "[target.api_key_env]"
    )
    assert (
        entries["--gpu"]
        == "--gpu {rtx3090,rtx4090,a100,h100,h200} GPU preset (default: a100) [sim.gpu]"
    )


def test_each_model_flag_help_line_names_its_field_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = help_entries(sweep_help(capsys, monkeypatch))
    own = {"-h", "--config", "--quiet", "--json"}
    unnamed = [
        entry
        for flag, entry in entries.items()
        if flag not in own and not re.search(r" \[[a-z]+\.[a-z_]+\]$", entry)
    ]
    assert unnamed == []
    # 71 fields (74, less the master's own 3); rates_rps and ignore_eos have two flags
    assert len(entries) == len(own) + 74
