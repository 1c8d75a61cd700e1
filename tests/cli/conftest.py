from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from regtool.cli.main import app


class Cli:
    """Runs `regtool` in-process and keeps stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        result = self(*args, "--json", env=env)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def cli() -> Cli:
    return Cli()
