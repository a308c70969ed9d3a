"""S22: the audit log: the admin's changes (a queue's settings, a pause, a new key) are read back
newest first with who made them, what they were done to and the settings before and after;
filters by action prefix, target, time and tenant; pages of one followed through ``next_cursor``
give each entry once; a producer's key gets 403 and ``limit=0`` a 422."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

import rota

from .conftest import Server

# Entries of the same millisecond are ordered by their (random) ids: the tests leave this much
# between changes whose order they check.
APART_S = 0.01


def _actor(client: rota.Client) -> str:
    """The admin's own actor, ``key:<its key id>``, from whoami's ``key <id>``."""
    principal = client.whoami().principal
    assert principal.startswith("key "), principal
    return "key:" + principal.split(" ", 1)[1]


def test_s22_the_audit_log_records_the_admins_changes(server: Server, client: rota.Client, queue: str) -> None:
    actor = _actor(client)
    client.update_queue(queue, max_attempts=7)
    time.sleep(APART_S)
    client.pause_queue(queue)
    time.sleep(APART_S)
    key = client.create_key(["producer"], name="s22-producer")

    # The queue's two entries, newest first, and the key's.
    page = client.audit(target=f"queues/{queue}")
    assert page.next_cursor is None
    assert [e.action for e in page.entries] == ["queue.pause", "queue.update"]
    paused, updated = page.entries
    for entry in page.entries:
        assert entry.actor == actor and entry.tenant == "default" and entry.target == f"queues/{queue}"
        assert len(entry.id) == 16 and int(entry.id, 16) >= 0
        assert entry.request_id and entry.source
    assert updated.after is not None and updated.after["max_attempts"] == 7
    assert updated.before is not None and updated.before["max_attempts"] == 25  # the default
    assert paused.at > updated.at
    [created] = client.audit(target=f"keys/{key.id}").entries
    assert created.action == "key.create" and created.actor == actor and created.at > paused.at
    assert created.after is not None and created.after["roles"] == ["producer"]
    assert created.after["name"] == "s22-producer"
    assert "token" not in created.after  # no secret is written

    # The exact action, and every action of an object (a trailing dot).
    exact = client.audit(action="queue.update", target=f"queues/{queue}").entries
    assert [e.id for e in exact] == [updated.id]
    prefixed = client.audit(action="queue.", actor=actor, limit=500).entries
    assert all(e.action.startswith("queue.") for e in prefixed)
    assert {paused.id, updated.id} <= {e.id for e in prefixed} and created.id not in {e.id for e in prefixed}
    # The admin's own tenant by name; none from a tenant without entries.
    assert [e.id for e in client.audit(tenant="default", target=f"queues/{queue}").entries] == [paused.id, updated.id]
    assert client.audit(tenant="s22-no-such-tenant").entries == []

    # since is inclusive and until exclusive.
    at_update = client.audit(target=f"queues/{queue}", since=updated.at, until=paused.at)
    assert [e.id for e in at_update.entries] == [updated.id]
    after_update = client.audit(target=f"queues/{queue}", since=updated.at + timedelta(milliseconds=1))
    assert [e.id for e in after_update.entries] == [paused.id]
    assert client.audit(target=f"queues/{queue}", until=updated.at).entries == []

    # Pages of one, newest first, each entry once, until next_cursor is None.
    since = updated.at
    whole = client.audit(actor=actor, since=since, limit=500)
    assert whole.next_cursor is None and len(whole.entries) >= 3
    seen = []
    cursor = None
    for _ in range(len(whole.entries) + 1):
        one = client.audit(actor=actor, since=since, limit=1, cursor=cursor)
        assert len(one.entries) == 1
        seen.append(one.entries[0].id)
        cursor = one.next_cursor
        if cursor is None:
            break
    assert cursor is None, "the pages did not end"
    assert seen == [e.id for e in whole.entries] and len(set(seen)) == len(seen)
    assert {created.id, paused.id, updated.id} <= set(seen)
    # iter_audit follows the cursors itself.
    assert [e.id for e in client.iter_audit(actor=actor, since=since, page_size=1)] == seen

    # A producer lacks audit:read.
    with rota.Client(server.url, key.token) as producer:
        with pytest.raises(rota.Forbidden) as refused:
            producer.audit()
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    assert "audit:read" in refused.value.message
    # A limit out of 1..500, and a cursor this server did not give: 422.
    with pytest.raises(rota.InvalidRequest) as bad:
        client.audit(limit=0)
    assert bad.value.status == 422 and bad.value.code == "invalid_field" and "limit" in bad.value.message
    with pytest.raises(rota.InvalidRequest) as bad_cursor:
        client.audit(cursor="not-a-cursor")
    assert bad_cursor.value.status == 422 and "cursor" in bad_cursor.value.message
    client.revoke_key(key.id)


def test_s22_a_tenant_admin_reads_only_its_own_tenant(server: Server, client: rota.Client, queue: str) -> None:
    client.update_queue(queue, max_attempts=3)
    key = client.create_key(["tenant-admin"], name="s22-tenant-admin")
    with rota.Client(server.url, key.token) as tenant_admin:
        [entry] = tenant_admin.audit(target=f"queues/{queue}").entries
        assert entry.action == "queue.update" and entry.after == {"max_attempts": 3}
        with pytest.raises(rota.Forbidden) as refused:
            tenant_admin.audit(tenant="s22-another-tenant")
    assert refused.value.status == 403
    client.revoke_key(key.id)


def test_s22_the_async_client_reads_the_audit_log(server: Server, queue: str) -> None:
    async def body() -> None:
        async with rota.AsyncClient(server.url, server.token) as c:
            await c.update_queue(queue, max_attempts=5)
            await asyncio.sleep(APART_S)
            await c.pause_queue(queue)
            await asyncio.sleep(APART_S)
            await c.resume_queue(queue)
            page = await c.audit(target=f"queues/{queue}", limit=2)
            assert [e.action for e in page.entries] == ["queue.resume", "queue.pause"]
            assert page.next_cursor is not None
            rest = await c.audit(target=f"queues/{queue}", limit=2, cursor=page.next_cursor)
            assert [e.action for e in rest.entries] == ["queue.update"] and rest.next_cursor is None
            assert rest.entries[0].before == {"max_attempts": 25}
            every = [e.action async for e in c.iter_audit(target=f"queues/{queue}", page_size=1)]
            assert every == ["queue.resume", "queue.pause", "queue.update"]
            with pytest.raises(rota.InvalidRequest) as bad:
                await c.audit(limit=501)
            assert bad.value.status == 422

    asyncio.run(body())
