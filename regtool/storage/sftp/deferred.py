"""Modules paramiko imports as it is imported, loaded only when something uses them.

paramiko's `config` module imports `invoke` (to run ssh_config's `Match exec`
commands): about 0.1 s of every start of a command over SFTP, for a file regtool never
reads. `defer` puts a stand-in under the module's name, which imports the real module at
its first attribute access and hands that on (an `importlib.util.LazyLoader` module
would not do: the import statement itself reads its `__spec__`, which loads it).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

#: Imported by paramiko, used by nothing regtool does.
UNUSED = ("invoke",)


class _Deferred(types.ModuleType):
    """Stands for a module not loaded yet: the first attribute asked for loads it."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def defer(name: str) -> None:
    """Let `import name` bind a stand-in that loads the module on first use; nothing if
    the module is loaded already, or not installed (its import then fails as ever)."""
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _Deferred(name)


for _name in UNUSED:
    defer(_name)
