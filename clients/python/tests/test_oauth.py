"""S21: OAuth 2.0 client credentials: a key's id and token become an access token (``Bearer``,
an hour) that acts as the key, narrowed by its scope; a client built with client credentials
fetches and renews its own; a wrong secret is ``invalid_client``, an unknown scope item
``invalid_scope``; a revoked key ends its tokens (401 after the client's one retry).

The other tests watch the token handling against a stand-in token endpoint: a token renewed
before it ends, one new token and one retry on a 401, one refresh at a time."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import rota

from .conftest import Server
from .helpers import FakeTokenServer, InThread


def test_s21_oauth_client_credentials(server: Server, client: rota.Client, queue: str) -> None:
    key = client.create_key(["producer"], name="s21-oauth")
    token = client.fetch_token(key.id, key.token)
    assert token.token_type == "Bearer" and token.expires_in == 3600
    assert "tasks:enqueue" in token.scope.split()
    assert token.access_token and token.access_token not in repr(token)
    # The access token is a bearer token like any other, acting as its key.
    with rota.Client(server.url, token.access_token) as by_token:
        assert key.id in by_token.whoami().principal

    # A client built with client credentials fetches its token itself.
    with rota.Client(server.url, client_id=key.id, client_secret=key.token) as c:
        task = c.enqueue(queue, "s21.k", {"n": 1})
        assert client.get_task(task.id).payload == {"n": 1}

    # Narrowed to reading the reports-* queues' tasks.
    client.enqueue("reports-eu", "s21.report")
    client.enqueue("emails", "s21.email")
    narrowed = client.fetch_token(key.id, key.token, scope="tasks:read queues/reports-*")
    assert narrowed.scope == "tasks:read queues/reports-*" and narrowed.expires_in == 3600
    with rota.Client(server.url, narrowed.access_token) as c:
        assert [t.kind for t in c.list_tasks("reports-eu").tasks] == ["s21.report"]
        with pytest.raises(rota.Forbidden) as refused:
            c.enqueue("reports-eu", "s21.report")
        assert refused.value.status == 403 and "scope" in refused.value.message
        with pytest.raises(rota.Forbidden) as other_queue:
            c.list_tasks("emails")
        assert other_queue.value.status == 403
    # The same scope given to a client built with client credentials, as a list.
    scope = ["tasks:read", "queues/reports-*"]
    with rota.Client(server.url, client_id=key.id, client_secret=key.token, scope=scope) as scoped:
        assert len(scoped.list_tasks("reports-eu").tasks) == 1
        with pytest.raises(rota.Forbidden):
            scoped.list_tasks("emails")

    # OAuth's errors become the library's, the OAuth error as the code.
    with pytest.raises(rota.Unauthorized) as wrong:
        client.fetch_token(key.id, f"rota_{key.id}_{'0' * 64}")
    assert wrong.value.status == 401 and wrong.value.code == "invalid_client" and wrong.value.message
    with pytest.raises(rota.InvalidRequest) as bad_scope:
        client.fetch_token(key.id, key.token, scope="tasks:fly")
    assert bad_scope.value.status == 400 and bad_scope.value.code == "invalid_scope"
    assert "tasks:fly" in bad_scope.value.message

    # Revoking the key ends its tokens: the client's next request is refused, it asks for a new
    # token once, and that is refused too.
    with rota.Client(server.url, client_id=key.id, client_secret=key.token) as c:
        assert c.list_tasks(queue).tasks
        client.revoke_key(key.id)
        with pytest.raises(rota.Unauthorized) as ended:
            c.list_tasks(queue)
        assert ended.value.status == 401 and ended.value.code == "invalid_client"


def test_s21_the_async_client_uses_client_credentials(server: Server, client: rota.Client, queue: str) -> None:
    key = client.create_key(["producer"], name=f"s21-async-{uuid.uuid4().hex[:8]}")

    async def body() -> None:
        async with rota.AsyncClient(server.url, client_id=key.id, client_secret=key.token) as c:
            task = await c.enqueue(queue, "s21.async")
            assert (await c.get_task(task.id)).kind == "s21.async"
            # The event stream is opened with the access token too.
            async for event in c.follow_events(queue=queue):
                assert event.type == "task.enqueued" and event.task_id == task.id
                break
            token = await c.fetch_token(key.id, key.token, scope="tasks:read")
            assert token.token_type == "Bearer" and token.scope == "tasks:read"
            with pytest.raises(rota.InvalidRequest) as bad_scope:
                await c.fetch_token(key.id, key.token, scope="tasks:fly")
            assert bad_scope.value.code == "invalid_scope"

    asyncio.run(body())
    client.revoke_key(key.id)


def test_s21_credentials_are_a_token_or_client_credentials() -> None:
    with pytest.raises(ValueError):
        rota.Client("http://127.0.0.1:1", "a-token", client_id="k", client_secret="rota_k_s")
    with pytest.raises(ValueError):
        rota.AsyncClient("http://127.0.0.1:1", client_id="k")


def test_s21_a_token_is_renewed_before_it_ends() -> None:
    fake = FakeTokenServer(expires_in=1)  # renewed after half its life
    try:
        with rota.Client(fake.url, client_id="k", client_secret="rota_k_s", scope="tasks:read") as c:
            c.queues()
            c.queues()
            assert fake.bearers == ["t1", "t1"]
            time.sleep(0.6)
            c.queues()
            assert fake.bearers[-1] == "t2"
        assert fake.forms[0] == {
            "grant_type": "client_credentials",
            "client_id": "k",
            "client_secret": "rota_k_s",
            "scope": "tasks:read",
        }
    finally:
        fake.close()


def test_s21_a_401_gets_one_new_token_and_one_retry() -> None:
    fake = FakeTokenServer()
    try:
        with rota.Client(fake.url, client_id="k", client_secret="rota_k_s") as c:
            c.queues()
            fake.valid.discard("t1")  # the server no longer takes it: a new one is fetched
            c.queues()
            assert fake.bearers == ["t1", "t1", "t2"] and len(fake.forms) == 2
            fake.accepting = False  # no token works: one retry, then the 401
            with pytest.raises(rota.Unauthorized) as refused:
                c.queues()
            assert refused.value.code == "unauthorized"
            assert fake.bearers[3:] == ["t2", "t3"] and len(fake.forms) == 3
    finally:
        fake.close()


def test_s21_one_refresh_at_a_time() -> None:
    fake = FakeTokenServer(token_delay=0.2)
    try:
        with rota.Client(fake.url, client_id="k", client_secret="rota_k_s") as c:
            threads = [InThread(c.queues) for _ in range(8)]
            for t in threads:
                t.join()
        assert len(fake.forms) == 1 and fake.bearers == ["t1"] * 8

        async def body() -> None:
            async with rota.AsyncClient(fake.url, client_id="k", client_secret="rota_k_s") as ac:
                await asyncio.gather(*(ac.queues() for _ in range(8)))

        asyncio.run(body())
        assert len(fake.forms) == 2 and fake.bearers[8:] == ["t2"] * 8
    finally:
        fake.close()
