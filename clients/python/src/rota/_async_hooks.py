"""The asyncio client's schedule and webhook methods: schedules (tasks the server enqueues on a
timetable), webhooks and the task-result callbacks' secret, and inbound webhooks (hooks: a
provider's requests that become tasks). :class:`AsyncClient` takes them in as a mixin.
``_sync_hooks.py`` is generated from this file by ``scripts/unasync.py``: edit this one and run
the script."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Type, TypeVar

import httpx

from ._body import some
from ._http import query, seg
from .models import JSON, CallbackSecret, Delivery, DeliveryPage, Hook, HookRequest, Schedule, Webhook

M = TypeVar("M")


class AsyncHooks:
    """Schedules, webhooks and task-result callbacks: what the server starts or sends by itself;
    and inbound webhooks (hooks), what others send it."""

    if TYPE_CHECKING:  # the client's plumbing, which the class using this mixin has

        async def _send(self, method: str, path: str) -> httpx.Response: ...

        async def _one(self, cls: Type[M], method: str, path: str, **kw: Any) -> M: ...

        async def _many(self, cls: Type[M], key: str, method: str, path: str, **kw: Any) -> List[M]: ...

    # ---- schedules ----------------------------------------------------------------------------

    async def schedules(self) -> List[Schedule]:
        return await self._many(Schedule, "schedules", "GET", "/v1/schedules")

    async def schedule(self, name: str) -> Schedule:
        return await self._one(Schedule, "GET", f"/v1/schedules/{seg(name)}")

    async def put_schedule(
        self,
        name: str,
        queue: str,
        *,
        cron: Optional[str] = None,
        every_ms: Optional[int] = None,
        kind: Optional[str] = None,
        payload: JSON = None,
        priority: Optional[int] = None,
        max_attempts: Optional[int] = None,
        group: Optional[str] = None,
        timezone: Optional[str] = None,
        jitter_ms: Optional[int] = None,
        catch_up: Optional[str] = None,
        overlap: Optional[str] = None,
        paused: Optional[bool] = None,
    ) -> Schedule:
        """Creates or replaces a schedule: exactly one of ``cron`` and ``every_ms``."""
        body = some(
            queue=queue,
            cron=cron,
            every_ms=every_ms,
            kind=kind,
            payload=payload,
            priority=priority,
            max_attempts=max_attempts,
            group=group,
            timezone=timezone,
            jitter_ms=jitter_ms,
            catch_up=catch_up,
            overlap=overlap,
            paused=paused,
        )
        return await self._one(Schedule, "PUT", f"/v1/schedules/{seg(name)}", body=body)

    async def delete_schedule(self, name: str) -> None:
        await self._send("DELETE", f"/v1/schedules/{seg(name)}")

    async def pause_schedule(self, name: str) -> Schedule:
        return await self._one(Schedule, "POST", f"/v1/schedules/{seg(name)}/pause")

    async def resume_schedule(self, name: str) -> Schedule:
        return await self._one(Schedule, "POST", f"/v1/schedules/{seg(name)}/resume")

    async def trigger_schedule(self, name: str) -> Schedule:
        """Fires the schedule once now."""
        return await self._one(Schedule, "POST", f"/v1/schedules/{seg(name)}/trigger")

    # ---- webhooks and task-result callbacks ---------------------------------------------------

    async def webhooks(self) -> List[Webhook]:
        return await self._many(Webhook, "webhooks", "GET", "/v1/webhooks")

    async def webhook(self, id: str) -> Webhook:
        return await self._one(Webhook, "GET", f"/v1/webhooks/{seg(id)}")

    async def create_webhook(
        self,
        url: str,
        events: Sequence[str],
        *,
        queues: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
    ) -> Webhook:
        """Answers the webhook with its signing ``secret``, shown this once."""
        body = some(url=url, events=list(events), queues=list(queues) if queues else None, description=description)
        return await self._one(Webhook, "POST", "/v1/webhooks", body=body)

    async def update_webhook(
        self,
        id: str,
        *,
        url: Optional[str] = None,
        events: Optional[Sequence[str]] = None,
        queues: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
        enabled: Optional[bool] = None,
    ) -> Webhook:
        body = some(
            url=url,
            events=list(events) if events is not None else None,
            queues=list(queues) if queues is not None else None,
            description=description,
            enabled=enabled,
        )
        return await self._one(Webhook, "PATCH", f"/v1/webhooks/{seg(id)}", body=body)

    async def delete_webhook(self, id: str) -> None:
        await self._send("DELETE", f"/v1/webhooks/{seg(id)}")

    async def rotate_webhook_secret(self, id: str, *, grace_ms: Optional[int] = None) -> Webhook:
        body = some(grace_ms=grace_ms)
        return await self._one(Webhook, "POST", f"/v1/webhooks/{seg(id)}/rotate-secret", body=body)

    async def deliveries(
        self,
        webhook_id: str,
        *,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        before: Optional[int] = None,
    ) -> DeliveryPage:
        """A webhook's deliveries, newest first (``"callbacks"`` for task results)."""
        params = query(state=state, limit=limit, before=before)
        return await self._one(DeliveryPage, "GET", f"/v1/webhooks/{seg(webhook_id)}/deliveries", params=params)

    async def retry_delivery(self, webhook_id: str, delivery: int) -> Delivery:
        path = f"/v1/webhooks/{seg(webhook_id)}/deliveries/{seg(str(delivery))}/retry"
        return await self._one(Delivery, "POST", path)

    async def callbacks(self) -> CallbackSecret:
        """Whether the tenant has a callback secret (never the secret itself)."""
        return await self._one(CallbackSecret, "GET", "/v1/callbacks")

    async def rotate_callback_secret(self, *, grace_ms: Optional[int] = None) -> CallbackSecret:
        """A new callback secret (shown this once); the first call creates it."""
        return await self._one(CallbackSecret, "POST", "/v1/callbacks/rotate-secret", body=some(grace_ms=grace_ms))

    # ---- inbound webhooks (hooks) -------------------------------------------------------------

    async def hooks(self) -> List[Hook]:
        return await self._many(Hook, "hooks", "GET", "/v1/hooks")

    async def hook(self, id: str) -> Hook:
        return await self._one(Hook, "GET", f"/v1/hooks/{seg(id)}")

    async def create_hook(
        self,
        name: str,
        queue: str,
        kind: str,
        verify: str,
        *,
        secret: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Hook:
        """A hook whose verified requests (``POST`` to its ``url``, no bearer token) become tasks
        of ``queue`` and ``kind``. ``verify`` is ``"github"``, ``"gitlab"``, ``"hmac-sha256"`` or
        ``"stripe"``; ``secret`` is the shared secret as the provider knows it (16 to 256
        printable ASCII characters; left out, one is made). The answer's ``secret`` is shown this
        once."""
        body = some(name=name, queue=queue, kind=kind, verify=verify, secret=secret, description=description)
        return await self._one(Hook, "POST", "/v1/hooks", body=body)

    async def update_hook(
        self,
        id: str,
        *,
        queue: Optional[str] = None,
        kind: Optional[str] = None,
        description: Optional[str] = None,
        enabled: Optional[bool] = None,
    ) -> Hook:
        """Changes the fields given; ``enabled=False`` refuses its requests (403 ``hook_disabled``)
        until it is enabled again. The caller becomes the hook's ``owner``."""
        body = some(queue=queue, kind=kind, description=description, enabled=enabled)
        return await self._one(Hook, "PATCH", f"/v1/hooks/{seg(id)}", body=body)

    async def delete_hook(self, id: str) -> None:
        await self._send("DELETE", f"/v1/hooks/{seg(id)}")

    async def rotate_hook_secret(
        self, id: str, *, grace_ms: Optional[int] = None, secret: Optional[str] = None
    ) -> Hook:
        """A new secret (``secret``, else one is made), in the answer's ``secret`` this once. The
        old one is still accepted for ``grace_ms`` (0 to 259,200,000; 0 refuses it at once; the
        server's default is a day), until ``previous_secret_until``."""
        body = some(grace_ms=grace_ms, secret=secret)
        return await self._one(Hook, "POST", f"/v1/hooks/{seg(id)}/rotate-secret", body=body)

    async def hook_requests(self, id: str) -> List[HookRequest]:
        """The last requests this server answered for the hook (at most 50), newest first; every
        server's are in the event log as ``hook.received`` and ``hook.rejected``."""
        return await self._many(HookRequest, "requests", "GET", f"/v1/hooks/{seg(id)}/requests")
