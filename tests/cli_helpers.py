"""Checks shared by the command-line tests (importable as ``tests.cli_helpers``)."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

# Wide enough that neither click nor rich wraps a message.
WIDE_RUNNER = CliRunner(env={"COLUMNS": "400"})


def assert_refused(result: Result, *needles: str) -> None:
    """Exit 2 (invalid input), a message with every needle, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output
