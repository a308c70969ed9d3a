"""S13: errors carry the server's code and message; reads are retried, writes are not."""

from __future__ import annotations

import asyncio
import time

import pytest

import rota

from .conftest import Server
from .helpers import DroppingServer, SilentServer


def test_s13_errors_carry_code_and_message(client: rota.Client, queue: str) -> None:
    with pytest.raises(rota.NotFound) as nf:
        client.get_task("01a20c27-4e6d-7000-8000-000000000000")
    assert nf.value.status == 404 and nf.value.code == "task_not_found"
    assert "does not exist" in nf.value.message
    # The server echoes the request id the client sent (its own are 24 hex digits; ours 32).
    assert nf.value.request_id is not None and len(nf.value.request_id) == 32
    with pytest.raises(rota.NotFound) as route:
        client.role("no-such-role")
    assert route.value.code == "not_found"
    with pytest.raises(rota.InvalidRequest) as bad:
        client.enqueue(queue, "k", max_attempts=0)
    assert bad.value.status == 422 and bad.value.code == "invalid_field"
    assert "max_attempts" in bad.value.message
    task = client.enqueue(queue, "k")
    client.cancel(task.id)
    with pytest.raises(rota.Conflict) as conflict:
        client.cancel(task.id)
    assert conflict.value.status == 409 and conflict.value.code == "invalid_state"
    with pytest.raises(rota.Unauthorized) as unauth:
        rota.Client(client.base_url, "rota_not_a_key").queues()
    assert unauth.value.code == "unauthorized"


def test_s13_reads_are_retried_writes_are_not() -> None:
    dropper = DroppingServer()
    try:
        c = rota.Client(dropper.url, "t", read_attempts=3)
        with pytest.raises(rota.TransportError):
            c.queues()
        assert dropper.accepted == 3
        with pytest.raises(rota.TransportError):
            c.enqueue("q", "k")
        assert dropper.accepted == 4
        ac = rota.AsyncClient(dropper.url, "t", read_attempts=2)
        with pytest.raises(rota.TransportError):
            asyncio.run(ac.get_task("01a20c27-4e6d-7000-8000-000000000000"))
        assert dropper.accepted == 6
        with pytest.raises(rota.TransportError):
            asyncio.run(ac.cancel("01a20c27-4e6d-7000-8000-000000000000"))
        assert dropper.accepted == 7
    finally:
        dropper.close()


def test_s13_timeouts_are_settable(server: Server, queue: str) -> None:
    c = rota.Client(server.url, server.token, timeout=1.0)
    assert c.timeout == 1.0
    # A long poll longer than the timeout gets its wait on top of it.
    started = time.monotonic()
    assert c.claim(queue, "w", wait_ms=2000) == []
    assert time.monotonic() - started >= 1.9
    # A server that never answers: each try of a read gives up after the timeout.
    silent = SilentServer()
    try:
        started = time.monotonic()
        with pytest.raises(rota.TransportError):
            rota.Client(silent.url, "t", timeout=0.3, read_attempts=2).queues()
        assert 0.6 <= time.monotonic() - started < 3
        assert silent.accepted == 2
    finally:
        silent.close()


def test_s13_environment_defaults(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTA_URL", server.url)
    monkeypatch.setenv("ROTA_TOKEN", server.token)
    me = rota.Client().whoami()
    assert me.tenant and "admin" in me.roles
    monkeypatch.setenv("ROTA_TOKEN", " ")
    with pytest.raises(rota.RotaError):
        rota.Client()
