"""Opening SFTP channels on one connection: a channel whose `sftp` subsystem request gets
no answer holds neither its thread nor its place in the pool for good."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paramiko
import pytest
from paramiko.common import cMSG_CHANNEL_REQUEST

from regtool.storage.sftp.connection import Connection, Lease
from tests.services.sshd import SshdService

pytestmark = pytest.mark.sftp


def test_an_unanswered_subsystem_request_gives_its_place_back(
    sshd_service: SshdService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request is dropped before it leaves (what a server that never answers looks
    like from here); the lease waiting on it gives up after the timeout, takes the server
    for full at the channels it has, and takes the next channel given back."""
    # the timeout bounds the wait for the dropped answer, and every other step too: long
    # enough for a loaded machine's logins
    d = sshd_service.driver(f"chan-{uuid.uuid4().hex[:8]}", timeout=5.0)
    send = paramiko.Transport._send_user_message
    dropped = threading.Event()

    def dropping(self: paramiko.Transport, m: Any) -> None:
        data = m.asbytes()
        if data[:1] == cMSG_CHANNEL_REQUEST and b"subsystem" in data and not dropped.is_set():
            dropped.set()
            return
        send(self, m)

    refused = threading.Event()
    original = Connection._refused

    def noting(self: Connection, *args: Any) -> None:
        try:
            original(self, *args)
        finally:
            refused.set()

    monkeypatch.setattr(Connection, "_refused", noting)
    with d:
        held = [d.connection.lease(), d.connection.lease()]
        monkeypatch.setattr(paramiko.Transport, "_send_user_message", dropping)
        got: list[Lease | BaseException] = []

        def lease() -> None:
            try:
                got.append(d.connection.lease())
            except BaseException as e:
                got.append(e)

        waiter = threading.Thread(target=lease, daemon=True)
        waiter.start()
        assert refused.wait(30), "the unanswered request was never given up"
        assert dropped.is_set() and d.connection.channel_limit == 2
        held.pop().release()
        waiter.join(30)
        assert not waiter.is_alive()
        (third,) = got
        assert isinstance(third, Lease), third
        third.client.listdir(".")  # a working channel
        third.release()
        held.pop().release()
