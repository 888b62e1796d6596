"""The API key reaches the server and nothing else: not the results, not the terminal.

The fake server answers some requests 401 with a body that echoes the X-Api-Key and
Authorization headers it got, the API key placed across byte 512 of the body, where an error
message cut before it is redacted would keep a piece of it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, Fault, Incoming, ServerThread

KEY_ENV = "FAKE_SERVER_API_KEY"
NUM_REQUESTS = 12


def leaked_pieces(secret: str, text: str) -> list[str]:
    """Every 8-character piece of `secret` that appears in `text`."""
    return [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in text]


def test_api_key_is_sent_and_never_written_or_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    key = "sk-" + secrets.token_hex(20)
    header_secret = "hdr-" + secrets.token_hex(20)
    monkeypatch.setenv(KEY_ENV, key)

    def script(incoming: Incoming) -> Behaviour:
        fault: Fault | None = "http_401_echo" if incoming.number % 3 == 1 else None
        return Behaviour(gap_s=0.002, fault=fault)

    fake = FakeOpenAI(script=script)
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "run",
                "--base-url",
                url,
                "--rate",
                "60",
                "--num-requests",
                str(NUM_REQUESTS),
                "--trim",
                "2",
                "--output-len",
                "4",
                "--api-key-env",
                KEY_ENV,
                "--header",
                f"X-Api-Key: {header_secret}",
                "--json",
                "--out",
                str(tmp_path),
            ]
        )
    out, err = capfd.readouterr()

    assert code == 0, err
    # The server got the key on every request, the model probe included.
    headers = [incoming.headers for incoming in fake.seen.requests] + fake.seen.models_headers
    assert len(headers) == NUM_REQUESTS + 1
    for got in headers:
        assert got["Authorization"] == f"Bearer {key}"
        assert got["X-Api-Key"] == header_secret
    # Some requests failed with a body echoing both secrets; their records say so, redacted.
    rows = read_jsonl(tmp_path / "requests.jsonl")
    failed = [row for row in rows if not row["ok"]]
    assert len(failed) == NUM_REQUESTS // 3
    for row in failed:
        assert (row["error_kind"], row["status"]) == ("http_4xx", 401)
        assert "invalid credentials" in row["error"]
        assert "***" in row["error"]
    assert read_summary(tmp_path)["config"]["target"]["api_key_env"] == KEY_ENV
    # Neither secret, nor any 8-character piece of one, is in any file or on the terminal.
    texts = {
        path.name: path.read_bytes().decode("utf-8", "replace")
        for path in tmp_path.iterdir()
        if path.is_file()
    }
    texts |= {"stdout": out, "stderr": err}
    assert set(texts) >= {"summary.json", "summary.csv", "requests.jsonl", "stdout", "stderr"}
    assert '"steps"' in out  # --json printed the summary, so stdout was really checked
    for name, text in texts.items():
        for secret in (key, header_secret):
            assert leaked_pieces(secret, text) == [], name
