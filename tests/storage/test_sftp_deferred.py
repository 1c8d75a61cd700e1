"""Modules paramiko imports and regtool never uses are loaded only when used: `invoke`
cost every SFTP command about 0.1 s of its start."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from regtool.storage.sftp import deferred


def test_invoke_is_loaded_only_when_used() -> None:
    script = textwrap.dedent(
        """
        import sys
        import regtool.storage.sftp
        import paramiko.config
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "invoke")
        assert loaded == ["invoke"] and type(sys.modules["invoke"]).__name__ == "_Deferred"
        assert callable(paramiko.config.invoke.run)  # what uses it gets the real module
        from invoke import Context
        assert Context.__module__ == "invoke.context"
        assert type(sys.modules["invoke"]).__name__ == "module"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_a_module_not_installed_is_left_to_fail_as_ever() -> None:
    deferred.defer("regtool_no_such_module")
    assert "regtool_no_such_module" not in sys.modules
