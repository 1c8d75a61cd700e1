"""Runs `regtool` in-process, as a user would, keeping stdout and stderr apart."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from regtool.cli.main import app


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        result = self(*args, "--json", env=env)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)
