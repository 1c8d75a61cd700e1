"""Run regtool as an installed package runs: with its bytecode compiled.

`pip install` compiles a package's modules to bytecode, so an installed `regtool` loads
them without parsing its source; the competing tools the benchmarks time (`swift`,
`ssh`) are installed so too. A development checkout run with PYTHONDONTWRITEBYTECODE
set (as CI and these machines set it) would instead parse every module of regtool on
each start, about 0.3 s of CPU that no user pays: the benchmarks compile regtool once and
run it without that variable.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import regtool


def installed_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) for a regtool subprocess, after compiling regtool's
    modules to bytecode; PYTHONDONTWRITEBYTECODE removed so that the bytecode is used."""
    compileall.compile_dir(str(Path(regtool.__file__).parent), quiet=1)
    child = dict(os.environ if env is None else env)
    child.pop("PYTHONDONTWRITEBYTECODE", None)
    return child
