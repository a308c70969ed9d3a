"""S10: webhooks, and checking a real delivery's signature in a receiver."""

from __future__ import annotations

import json
import time

import pytest

import rota
from rota.signature import InvalidSignature, verify_delivery

from .helpers import wait_until
from .receiver import Receiver


def test_s10_webhooks_and_signature_verification(client: rota.Client, queue: str) -> None:
    receiver = Receiver()
    try:
        hook = client.create_webhook(receiver.url, ["task.enqueued"], queues=[queue], description="test")
        assert hook.secret and hook.url == receiver.url and hook.enabled
        assert hook.id in [w.id for w in client.webhooks()]
        assert client.webhook(hook.id).secret is None  # shown once
        task = client.enqueue(queue, "k")
        headers, body = wait_until(lambda: receiver.received and receiver.received[0], timeout=20)
        event = json.loads(body)
        assert event["type"] == "task.enqueued" and event["task_id"] == task.id

        verify_delivery(hook.secret, url=receiver.url, headers=headers, body=body, webhook_id=hook.id)
        with pytest.raises(InvalidSignature):
            verify_delivery(
                hook.secret, url=receiver.url, headers=headers, body=body.replace(b"enqueued", b"succeeded")
            )
        with pytest.raises(InvalidSignature):
            verify_delivery("whsec_wrong", url=receiver.url, headers=headers, body=body)
        with pytest.raises(InvalidSignature):
            verify_delivery(hook.secret, url=receiver.url + "x", headers=headers, body=body)
        with pytest.raises(InvalidSignature):
            verify_delivery(hook.secret, url=receiver.url, headers=headers, body=body, now=time.time() + 3600)
        with pytest.raises(InvalidSignature):
            verify_delivery(hook.secret, url=receiver.url, headers=headers, body=body, webhook_id="wh_other")

        page = wait_until(lambda: (p := client.deliveries(hook.id, state="delivered")).deliveries and p)
        delivery = page.deliveries[0]
        assert delivery.event.task_id == task.id and delivery.attempts >= 1
        again = client.retry_delivery(hook.id, delivery.id)
        assert again.id == delivery.id
        wait_until(lambda: len(receiver.received) >= 2, timeout=20)

        rotated = client.rotate_webhook_secret(hook.id, grace_ms=60_000)
        assert rotated.secret and rotated.secret != hook.secret and rotated.previous_secret_until
        disabled = client.update_webhook(hook.id, enabled=False, description="off")
        assert not disabled.enabled and disabled.description == "off"
        client.delete_webhook(hook.id)
        with pytest.raises(rota.NotFound):
            client.webhook(hook.id)
    finally:
        receiver.close()


def test_s10_task_result_callback_is_signed_with_the_callback_secret(client: rota.Client, queue: str) -> None:
    receiver = Receiver()
    try:
        secret = client.rotate_callback_secret().secret
        assert secret and client.callbacks().configured
        task = client.enqueue(queue, "report", {"month": "2026-10"}, callback_url=receiver.url)
        [claimed] = client.claim(queue, "w")
        client.complete(task.id, claimed.lease.token, {"rows": 3})  # type: ignore[union-attr]
        headers, body = wait_until(lambda: receiver.received and receiver.received[0], timeout=20)
        verify_delivery([secret], url=receiver.url, headers=headers, body=body, webhook_id="callbacks")
        result = json.loads(body)
        assert result["id"] == task.id and result["result"] == {"rows": 3}
    finally:
        receiver.close()
