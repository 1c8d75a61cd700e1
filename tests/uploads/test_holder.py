"""A lease names its holder process; one that ran here and no longer runs is gone."""

from __future__ import annotations

import subprocess
import sys
import uuid

from regtool.uploads.holder import current_holder, holder_gone


def test_this_process_is_not_gone() -> None:
    holder = current_holder()
    assert holder is not None  # Linux, with /proc: the test machines
    assert not holder_gone(holder)


def test_a_process_that_ended_is_gone_and_a_reused_pid_is_not_its_holder() -> None:
    code = "from regtool.uploads.holder import current_holder; print(current_holder())"
    ended = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert holder_gone(ended)
    boot, namespace, pid, start = str(current_holder()).split("/")
    assert holder_gone(f"{boot}/{namespace}/{pid}/{int(start) + 1}")  # same pid, another start


def test_holders_elsewhere_or_unnamed_are_not_known_to_be_gone() -> None:
    boot, namespace, _, _ = str(current_holder()).split("/")
    assert not holder_gone(f"{uuid.uuid4()}/{namespace}/999999/1")  # another boot or host
    assert not holder_gone(f"{boot}/1/999999/1")  # another pid namespace (a container)
    assert not holder_gone(None)  # a lease written before holders were named
    assert not holder_gone("garbage")
