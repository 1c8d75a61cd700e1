"""What a new user meets in the first minute: a mistyped LOCATION, a file, the default
store before `regtool serve` made it, --version, usage lines, help, counted words."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from regtool.location import default_store_path
from tests.cli.test_ls_errors import assert_one_line_error
from tests.handstore import HandStore

COMMANDS = [("ls",), ("verify", "--all", "-l"), ("gc", "--dry-run", "-l")]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_location_that_does_not_exist(cli: Any, tmp_path: Path, command: tuple[str]) -> None:
    typo = tmp_path / "regsitry"
    assert_one_line_error(cli(*command, str(typo)), f"{typo}: no such directory")
    assert not typo.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_is_no_location(cli: Any, tmp_path: Path, command: tuple[str]) -> None:
    (tmp_path / "config.yml").write_text("version: 0.1\n")
    where = tmp_path / "config.yml"
    assert_one_line_error(cli(*command, str(where)), f"{where} is not a directory")


@pytest.mark.parametrize("command", [("ls",), ("verify", "--all"), ("gc", "--dry-run")])
def test_the_default_store_before_serve_made_it(cli: Any, command: tuple[str]) -> None:
    path = default_store_path()
    assert_one_line_error(cli(*command), f"{path} does not exist", "regtool serve")


def test_an_empty_directory_is_an_empty_registry(cli: Any, tmp_path: Path) -> None:
    result = cli("ls", str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == f"No repositories in {tmp_path} (v2 layout).\n"


def test_version(cli: Any) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"regtool {version('regtool')}\n"


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("ls", "Usage: regtool ls [OPTIONS] [LOCATION] [REPOSITORY]"),
        ("verify", "Usage: regtool verify [OPTIONS] [TARGET...]"),
        ("gc", "Usage: regtool gc [OPTIONS]"),
    ],
)
def test_usage_lines(cli: Any, command: str, usage: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == usage
    assert "exit" in result.stdout.lower() and "storage fault" in result.stdout


def test_counted_words(cli: Any, tmp_path: Path) -> None:
    one = HandStore(tmp_path / "one")
    one.image("app", "1")
    result = cli("ls", str(tmp_path / "one"))
    assert "\n1 repository, 1 tag, " in result.stdout
    result = cli("verify", "--all", "-l", str(tmp_path / "one"))
    assert "1 result (1 ok); 1 image, 3 blobs checked; " in result.stdout
    two = HandStore(tmp_path / "two")
    two.image("app", "1")
    two.image("app", "2")
    two.image("b", "1")
    assert "\n2 repositories, 3 tags, " in cli("ls", str(tmp_path / "two")).stdout


def test_the_installed_command(tmp_path: Path) -> None:
    regtool = Path(sys.executable).with_name("regtool")
    result = subprocess.run(
        [str(regtool), "ls", str(tmp_path / "nope")], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {tmp_path / 'nope'}: no such directory\n"
    version_run = subprocess.run([str(regtool), "--version"], capture_output=True, text=True)
    assert version_run.returncode == 0 and version_run.stdout.startswith("regtool ")
