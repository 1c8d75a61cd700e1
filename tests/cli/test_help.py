"""Every command's help renders (its text holds brackets that markup would eat)."""

from __future__ import annotations

import pytest

from regtool.cli.main import COMMANDS


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(cli, command: str | None) -> None:
    result = cli(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage: regtool" in result.stdout
    if command and "\nCommands:" not in result.stdout:  # a group (htpasswd) takes no store
        assert "--location" in result.stdout and "swift://container[/prefix]" in result.stdout
