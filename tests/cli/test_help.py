"""Every command's help renders (its text holds brackets that markup would eat)."""

from __future__ import annotations

import pytest

from regtool.cli.main import app


def _commands() -> list[str]:
    return [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


@pytest.mark.parametrize("command", [None, *_commands()])
def test_help(cli, command: str | None) -> None:
    result = cli(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage: regtool" in result.stdout
    if command:
        assert "--location" in result.stdout and "swift://container[/prefix]" in result.stdout
