"""The IVR's commands, and the docs' dialplan kept identical to what the constants generate."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from callcenter.cli.main import app
from callcenter.ivr import constants as c

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ivr.md"


def test_dialplan_command_prints_the_generated_context() -> None:
    result = CliRunner().invoke(app, ["ivr", "dialplan", "--host", "10.0.0.7", "--port", "4600"])
    assert result.exit_code == 0, result.output
    assert result.output == c.dialplan_snippet(host="10.0.0.7", port=4600)
    assert "AGI(agi://10.0.0.7:4600/survey)" in result.output
    assert f"[{c.CONTEXT_SURVEY}]" in result.output and f"${{{c.VAR_ATTEMPT_ID}}}" in result.output


def test_docs_carry_the_generated_dialplan() -> None:
    assert c.dialplan_snippet() in DOCS.read_text(encoding="utf-8")


def test_check_command_lists_the_reasons() -> None:
    result = CliRunner().invoke(app, ["ivr", "check"])
    assert result.exit_code == 0, result.output
    assert "9 reasons" in result.output and "thái độ cán bộ" in result.output


def test_agi_server_is_a_top_level_command() -> None:
    result = CliRunner().invoke(app, ["agi-server", "--help"])
    assert result.exit_code == 0 and "FastAGI" in result.output
