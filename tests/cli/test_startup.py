"""A command imports what it runs, not every other command's tool: `regtool ls` on a warm
cache takes about as long as its start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Imported by other commands only (serve, ui, gc, prune, migrate) or by another backend.
FOREIGN = (
    "starlette",
    "uvicorn",
    "jinja2",
    "prometheus_client",
    "yaml",
    "rich",
    "tabulate",
    "paramiko",
    "swiftclient",
    "regtool.server",
    "regtool.ui",
    "regtool.gc",
    "regtool.retention",
    "regtool.migrate",
    "regtool.inspect.verify",
)

_RUN = """
import json, sys
from regtool.cli.main import main
sys.argv = ["regtool", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\n" + json.dumps(sorted(sys.modules)))
"""


def _modules(*argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *argv], capture_output=True, text=True, timeout=60
    )
    return set(json.loads(done.stderr.splitlines()[-1]))


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_ls_json_imports_only_what_it_uses(tmp_path: Path) -> None:
    modules = _modules("ls", "--json", str(tmp_path))
    assert "regtool.inspect.listing" in modules  # it did run
    assert [m for m in FOREIGN if _loaded(modules, m)] == []


def test_each_command_imports_its_own_module_only(tmp_path: Path) -> None:
    modules = _modules("verify", "--help")
    assert "regtool.cli.verify" in modules
    others = ("regtool.cli.serve", "regtool.cli.gc", "regtool.cli.ls", "regtool.cli.ui")
    assert [m for m in others if m in modules] == []
