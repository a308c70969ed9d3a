"""S12: tenants, keys, roles."""

from __future__ import annotations

import uuid

import pytest

import rota
from rota import ClientLimits, Rule

from .conftest import Server


def test_s12_tenants_keys_roles(server: Server, client: rota.Client, queue: str) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    made = client.create_tenant(tenant, limits=ClientLimits(requests_per_minute=6000))
    assert made.name == tenant
    assert tenant in [t.name for t in client.tenants()]
    assert client.tenant(tenant).limits.requests_per_minute == 6000  # type: ignore[union-attr]
    patched = client.update_tenant(tenant, event_retention_ms=3_600_000)
    assert patched.event_retention_ms == 3_600_000
    assert client.update_tenant(tenant, event_retention_ms=None).event_retention_ms is None

    # Act in the new tenant as the admin, and make a key there.
    admin_there = rota.Client(server.url, server.token, tenant=tenant)
    role = admin_there.put_role("emails-only", [Rule(resource="queues/emails-*", action="tasks:*")])
    assert role.name == "emails-only" and not role.builtin
    assert role.rules[0].effect == "allow"
    assert admin_there.role("emails-only").rules[0].resource == "queues/emails-*"
    names = [r.name for r in admin_there.roles()]
    assert "admin" in names and "emails-only" in names

    key = admin_there.create_key(["producer"], name="app", queues=["emails-*"])
    assert key.token.startswith("rota_") and key.tenant == tenant
    assert key.id in [k.id for k in admin_there.keys()]
    assert admin_there.key(key.id).name == "app"

    producer = rota.Client(server.url, key.token)
    me = producer.whoami()
    assert me.tenant == tenant and me.roles == ["producer"]
    task = producer.enqueue("emails-eu", "send", {"to": "x"})
    assert producer.get_task(task.id).queue == "emails-eu"
    with pytest.raises(rota.Forbidden) as refused:
        producer.enqueue("billing", "charge")
    assert "tasks:enqueue" in refused.value.message
    with pytest.raises(rota.NotFound):
        client.get_task(task.id)  # another tenant's task is not found from the admin's own

    revoked = admin_there.revoke_key(key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(rota.Unauthorized):
        producer.whoami()
    admin_there.delete_role("emails-only")
    with pytest.raises(rota.NotFound):
        admin_there.role("emails-only")
    client.delete_tenant(tenant)
    with pytest.raises(rota.NotFound):
        client.tenant(tenant)
