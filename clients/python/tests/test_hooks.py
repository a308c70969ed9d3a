"""S20: inbound webhooks (hooks): a provider's request to a hook's ``url`` (sent here with plain
httpx, as a provider would: no bearer token) becomes a task of the hook's queue with the payload
``{"body": ..., "headers": {...}}``; a wrong or missing proof is a 401 and no task; a disabled
hook answers 403 ``hook_disabled``; a rotated secret proves requests at once and the old one only
within the grace; GitHub's documented signature is accepted and a redelivery finds its task."""

from __future__ import annotations

import asyncio
import uuid
from typing import Dict, Optional

import httpx
import pytest

import rota

from .conftest import Server

GITLAB_SECRET = "s20-gitlab-secret-token-1"
# docs.github.com, "Validating webhook deliveries": this secret and body give this signature.
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def _send(url: str, body: bytes, headers: Dict[str, str], content_type: Optional[str] = None) -> httpx.Response:
    """A provider's POST to a hook: its own headers, no Authorization."""
    sent = dict(headers)
    if content_type:
        sent["content-type"] = content_type
    return httpx.post(url, content=body, headers=sent, timeout=10)


def _gitlab(url: str, token: str, key: Optional[str] = None) -> httpx.Response:
    """A GitLab push event, its secret token sent as it is."""
    headers = {"X-Gitlab-Token": token, "X-Gitlab-Event": "Push Hook"}
    if key:
        headers["Idempotency-Key"] = key
    return _send(url, b'{"ref":"refs/heads/main"}', headers, "application/json")


def _error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_s20_a_gitlab_hook_turns_a_request_into_a_task(client: rota.Client, queue: str) -> None:
    name = f"s20-gitlab-{uuid.uuid4().hex[:8]}"
    made = client.create_hook(name, queue, "gitlab.push", "gitlab", secret=GITLAB_SECRET, description="s20")
    assert made.id.startswith("hk_") and made.name == name
    assert made.queue == queue and made.kind == "gitlab.push" and made.verify == "gitlab"
    assert made.enabled and made.description == "s20" and made.owner
    assert made.secret == GITLAB_SECRET and made.previous_secret_until is None
    assert made.url.endswith(f"/hooks/{made.id}")

    # GitLab sends its secret token as it is; the request becomes a task of the hook's queue.
    key = str(uuid.uuid4())
    sent = _gitlab(made.url, GITLAB_SECRET, key=key)
    assert sent.status_code == 202, sent.text
    answer = sent.json()
    assert answer["duplicate"] is False
    task = client.get_task(answer["task_id"])
    assert task.queue == queue and task.kind == "gitlab.push"
    assert task.payload == {
        "body": {"ref": "refs/heads/main"},
        "headers": {"x-gitlab-event": "Push Hook", "idempotency-key": key},
    }

    # A wrong token and no token: 401, and no task.
    wrong = _gitlab(made.url, "not-the-secret-token")
    assert wrong.status_code == 401 and _error_code(wrong) == "bad_signature"
    missing = _send(made.url, b"{}", {}, "application/json")
    assert missing.status_code == 401 and _error_code(missing) == "missing_signature"
    assert [t.id for t in client.list_tasks(queue).tasks] == [task.id]

    # Read back through the client: the secret is not shown again.
    assert made.id in [h.id for h in client.hooks()]
    assert all(h.secret is None for h in client.hooks())
    shown = client.hook(made.id)
    assert shown.secret is None and shown.url == made.url and shown.queue == queue
    requests = client.hook_requests(made.id)
    assert [(r.outcome, r.status) for r in requests] == [("rejected", 401), ("rejected", 401), ("received", 202)]
    assert requests[0].reason and requests[0].reason.startswith("missing_signature")
    assert requests[1].reason and requests[1].reason.startswith("bad_signature")
    assert requests[2].task_id == task.id and requests[2].delivery == key and requests[2].reason is None
    assert requests[2].address

    # The event log has both outcomes.
    events = client.events(types=["hook.*"], queue=queue).events
    received = [e for e in events if e.type == "hook.received"]
    rejected = [e for e in events if e.type == "hook.rejected"]
    assert [e.task_id for e in received] == [task.id] and received[0].data["hook_id"] == made.id
    assert len(rejected) == 2 and all(e.data["hook_id"] == made.id for e in rejected)
    assert rejected[0].data["reason"].startswith("bad_signature")

    # Disabled, it refuses even a good token (403 hook_disabled) and enqueues nothing.
    off = client.update_hook(made.id, enabled=False, description="off")
    assert not off.enabled and off.description == "off" and off.secret is None
    refused = _gitlab(made.url, GITLAB_SECRET)
    assert refused.status_code == 403 and _error_code(refused) == "hook_disabled"
    assert len(client.list_tasks(queue).tasks) == 1
    assert client.update_hook(made.id, enabled=True).enabled

    # A rotation with no grace: the new secret works at once and the old one no longer does.
    first = client.rotate_hook_secret(made.id, grace_ms=0, secret="s20-gitlab-secret-token-2")
    assert first.secret == "s20-gitlab-secret-token-2" and first.previous_secret_until is None
    assert _gitlab(made.url, GITLAB_SECRET).status_code == 401
    assert _gitlab(made.url, "s20-gitlab-secret-token-2").status_code == 202
    # With an hour's grace and a secret made by the server: both work until then.
    second = client.rotate_hook_secret(made.id, grace_ms=3_600_000)
    assert second.secret and second.secret != first.secret and second.previous_secret_until is not None
    assert _gitlab(made.url, second.secret).status_code == 202
    assert _gitlab(made.url, "s20-gitlab-secret-token-2").status_code == 202
    assert client.hook(made.id).previous_secret_until == second.previous_secret_until
    assert len(client.list_tasks(queue).tasks) == 4

    client.delete_hook(made.id)
    with pytest.raises(rota.NotFound):
        client.hook(made.id)
    assert made.id not in [h.id for h in client.hooks()]
    gone = _gitlab(made.url, second.secret)
    assert gone.status_code == 404 and _error_code(gone) == "not_found"


def test_s20_a_github_hook_verifies_its_signature_and_finds_a_redelivery(client: rota.Client, queue: str) -> None:
    name = f"s20-github-{uuid.uuid4().hex[:8]}"
    made = client.create_hook(name, queue, "github.push", "github", secret=GITHUB_SECRET)
    delivery = str(uuid.uuid4())
    headers = {"X-Hub-Signature-256": GITHUB_SIGNATURE, "X-GitHub-Delivery": delivery, "X-GitHub-Event": "push"}

    first = _send(made.url, GITHUB_BODY, headers, "text/plain")
    assert first.status_code == 202, first.text
    assert first.json()["duplicate"] is False
    task_id = first.json()["task_id"]
    task = client.get_task(task_id)
    # Not JSON: the body is kept as text.
    headers_kept = {"x-github-delivery": delivery, "x-github-event": "push"}
    assert task.payload == {"body": "Hello, World!", "headers": headers_kept}

    # GitHub redelivers with the same delivery id: the task it made is found, no new one.
    again = _send(made.url, GITHUB_BODY, headers, "text/plain")
    assert again.status_code == 200 and again.json() == {"task_id": task_id, "duplicate": True}
    assert [t.id for t in client.list_tasks(queue).tasks] == [task_id]

    # The body changed after signing: refused.
    forged = _send(made.url, b"Hello, World?", headers, "text/plain")
    assert forged.status_code == 401 and _error_code(forged) == "bad_signature"

    requests = client.hook_requests(made.id)
    assert [(r.outcome, r.status) for r in requests] == [("rejected", 401), ("duplicate", 200), ("received", 202)]
    assert [r.delivery for r in requests[1:]] == [delivery, delivery]
    assert [r.task_id for r in requests] == [None, task_id, task_id]
    client.delete_hook(made.id)


def test_s20_the_async_client_manages_hooks(server: Server, queue: str) -> None:
    async def body() -> None:
        async with rota.AsyncClient(server.url, server.token) as c:
            made = await c.create_hook(f"s20-async-{uuid.uuid4().hex[:8]}", queue, "k", "gitlab")
            assert made.secret and len(made.secret) >= 16  # made by the server
            assert (await c.hook(made.id)).secret is None
            assert made.id in [h.id for h in await c.hooks()]
            async with httpx.AsyncClient() as provider:
                sent = await provider.post(made.url, content=b"plain text", headers={"X-Gitlab-Token": made.secret})
            assert sent.status_code == 202, sent.text
            [request] = await c.hook_requests(made.id)
            assert request.outcome == "received" and request.task_id == sent.json()["task_id"]
            assert (await c.get_task(request.task_id)).payload == {"body": "plain text", "headers": {}}
            changed = await c.update_hook(made.id, kind="k2")
            assert changed.kind == "k2"
            rotated = await c.rotate_hook_secret(made.id, grace_ms=0)
            assert rotated.secret and rotated.secret != made.secret
            await c.delete_hook(made.id)
            with pytest.raises(rota.NotFound):
                await c.hook(made.id)

    asyncio.run(body())
