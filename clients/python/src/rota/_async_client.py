"""The asyncio client. ``_sync_client.py`` is generated from this file by
``scripts/unasync.py``: edit this one and run the script."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Type, TypeVar

import httpx

from . import _http
from ._async_workflows import AsyncWorkflows
from ._decode import decode, decode_list, format_time
from ._http import query, seg
from ._sse import SseParser
from .errors import ApiError, RateLimited, Unavailable
from .models import (
    JSON,
    CallbackSecret,
    ClientLimits,
    CompleteItem,
    CreatedKey,
    Delivery,
    DeliveryPage,
    DoctorReport,
    EnqueuedTask,
    Event,
    EventPage,
    FailItem,
    GroupInfo,
    GroupPage,
    ItemOutcome,
    Key,
    Maintenance,
    NewTask,
    QueueInfo,
    QueueStats,
    Rate,
    Readiness,
    Role,
    Rule,
    Schedule,
    Task,
    TaskPage,
    Tenant,
    Ticket,
    Webhook,
    WhoAmI,
    WorkerProcess,
)

M = TypeVar("M")


#: A live event stream silent this long is dead: three of the server's 15 s keep-alives missed.
SSE_SILENCE_S = 45.0


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""A patch field left as it is (``None`` sends ``null``, which lifts a limit)."""

_NO_BODY: Any = object()


def _patch(**fields: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, value in fields.items():
        if value is UNSET:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # Rate, Backoff, ClientLimits: their fields, leaving out the unset ones.
            value = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
        elif isinstance(value, datetime):
            value = format_time(value)
        out[name] = value
    return out


def _some(**fields: Any) -> Dict[str, Any]:
    """The fields that are not ``None``."""
    return _patch(**{k: v for k, v in fields.items() if v is not None})


class AsyncClient(AsyncWorkflows):
    """A client for Rota's HTTP API.

    ``url``, ``token`` and ``tenant`` default to ``ROTA_URL`` (else ``http://127.0.0.1:7070``),
    ``ROTA_TOKEN`` and ``ROTA_TENANT``. ``timeout`` (seconds) bounds each request; long polls
    get their wait on top. Reads are tried ``read_attempts`` times when no answer comes; writes
    once, since a write whose answer was lost may have happened. Every request carries an
    ``X-Request-Id``, which errors carry back as ``request_id``.

    Workflows, batches and spawning tasks from a running task: see :class:`AsyncWorkflows`.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        tenant: Optional[str] = None,
        timeout: float = _http.DEFAULT_TIMEOUT,
        read_attempts: int = _http.READ_ATTEMPTS,
        max_connections: int = 100,
    ) -> None:
        self._config = _http.make_config(url, token, tenant, timeout, read_attempts)
        self._http = httpx.AsyncClient(
            base_url=self._config.base_url,
            headers=self._config.headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def timeout(self) -> float:
        return self._config.timeout

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- plumbing -----------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Dict[str, str]] = None,
        body: Any = _NO_BODY,
        wait_s: float = 0.0,
        headers: Optional[Dict[str, str]] = None,
    ) -> httpx.Response:
        """The answer to one request: retried when a read gets none, raised when an error."""
        request_id = _http.new_request_id()
        content = None if body is _NO_BODY else _http.dump(body)
        hdrs = _http.request_headers(request_id, headers)
        if content is not None:
            hdrs["content-type"] = "application/json"
        attempts = self._config.read_attempts if _http.is_read(method) else 1
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    content=content,
                    headers=hdrs,
                    timeout=self._config.timeout + wait_s,
                )
                break
            except httpx.TransportError as e:
                attempt += 1
                if attempt >= attempts:
                    raise _http.to_transport_error(e, method, path) from e
                await asyncio.sleep(_http.retry_delay(attempt))
        if response.status_code >= 400:
            raise _http.error_from(response, response.content)
        return response

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._send(method, path, **kw)
        return _http.read_json(response.content)

    async def _one(self, cls: Type[M], method: str, path: str, **kw: Any) -> M:
        return decode(cls, await self._json(method, path, **kw))

    async def _many(self, cls: Type[M], key: str, method: str, path: str, **kw: Any) -> List[M]:
        return decode_list(cls, (await self._json(method, path, **kw))[key])

    # ---- tasks --------------------------------------------------------------------------------

    async def enqueue(
        self,
        queue: str,
        kind: Optional[str] = None,
        payload: JSON = None,
        *,
        priority: Optional[int] = None,
        run_at: Optional[datetime] = None,
        delay_ms: Optional[int] = None,
        max_attempts: Optional[int] = None,
        unique_key: Optional[str] = None,
        on_duplicate: Optional[str] = None,
        tags: Optional[List[str]] = None,
        group: Optional[str] = None,
        callback_url: Optional[str] = None,
        depends_on: Optional[Sequence[str]] = None,
        on_dependency_failure: Optional[str] = None,
    ) -> EnqueuedTask:
        """Enqueues one task; with ``unique_key``, a live holder of the key is answered instead
        (``duplicate``), or rewritten in place with ``on_duplicate="replace"`` (``replaced``).
        With ``depends_on`` (task ids, any queue) it is ``waiting`` until they all succeed; one
        that ends dead or cancelled cancels it, or with ``on_dependency_failure="run"`` it runs
        anyway."""
        task = NewTask(
            kind=kind,
            payload=payload,
            priority=priority,
            run_at=run_at,
            delay_ms=delay_ms,
            max_attempts=max_attempts,
            unique_key=unique_key,
            on_duplicate=on_duplicate,
            tags=tags,
            group=group,
            callback_url=callback_url,
            depends_on=list(depends_on) if depends_on is not None else None,
            on_dependency_failure=on_dependency_failure,
        )
        return await self._one(EnqueuedTask, "POST", f"/v1/queues/{seg(queue)}/tasks", body=task.to_json())

    async def enqueue_batch(self, queue: str, tasks: Sequence[NewTask]) -> List[EnqueuedTask]:
        """Enqueues ``tasks`` in one transaction (all or nothing), answered in order."""
        body = {"tasks": [t.to_json() for t in tasks]}
        return await self._many(EnqueuedTask, "tasks", "POST", f"/v1/queues/{seg(queue)}/tasks", body=body)

    async def get_task(self, id: str, *, wait_ms: Optional[int] = None) -> Task:
        """The task; with ``wait_ms``, once it is final or when the wait ends (check ``state``)."""
        wait_s = (wait_ms or 0) / 1000
        return await self._one(Task, "GET", f"/v1/tasks/{seg(id)}", params=query(wait_ms=wait_ms), wait_s=wait_s)

    async def list_tasks(
        self,
        queue: str,
        *,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        unique_key: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> TaskPage:
        """One page, newest first; pass ``next_cursor`` back as ``cursor`` for the next."""
        params = query(state=state, kind=kind, unique_key=unique_key, limit=limit, cursor=cursor)
        return await self._one(TaskPage, "GET", f"/v1/queues/{seg(queue)}/tasks", params=params)

    async def iter_tasks(
        self,
        queue: str,
        *,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[Task]:
        """Every task of the queue (newest first), page by page."""
        cursor: Optional[str] = None
        while True:
            page = await self.list_tasks(queue, state=state, kind=kind, limit=page_size, cursor=cursor)
            for task in page.tasks:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, id: str) -> Task:
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/cancel")

    async def retry(self, id: str) -> Task:
        """A dead or cancelled task back to ``ready`` with ``attempt`` 0."""
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/retry")

    async def run_now(self, id: str) -> Task:
        """A scheduled task (delayed, or a retry waiting for its backoff) ready now."""
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/run-now")

    async def kill(self, id: str, reason: Optional[str] = None) -> Task:
        """A scheduled or ready task to the dead letters, recording ``reason``."""
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/kill", body=_some(reason=reason))

    async def delete_task(self, id: str) -> Task:
        """Deletes a task that is not running; answers it as it was."""
        return await self._one(Task, "DELETE", f"/v1/tasks/{seg(id)}")

    async def claim(
        self,
        queue: str,
        worker: str,
        *,
        max: int = 1,
        kinds: Optional[Sequence[str]] = None,
        wait_ms: Optional[int] = None,
        lease_ms: Optional[int] = None,
    ) -> List[Task]:
        """Leases up to ``max`` ready tasks, waiting up to ``wait_ms`` for one. A task enqueued
        with ``depends_on`` carries its ``dependencies`` and their results."""
        body = _some(worker=worker, max=max, kinds=list(kinds) if kinds else None, wait_ms=wait_ms, lease_ms=lease_ms)
        wait_s = (wait_ms or 0) / 1000
        return await self._many(Task, "tasks", "POST", f"/v1/queues/{seg(queue)}/claim", body=body, wait_s=wait_s)

    async def heartbeat(self, id: str, lease: str, *, lease_ms: Optional[int] = None, progress: JSON = None) -> Task:
        """Extends the lease; raises :class:`TaskCancelled` or :class:`LeaseLost` when the
        worker must stop."""
        body = _some(lease=lease, lease_ms=lease_ms, progress=progress)
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/heartbeat", body=body)

    async def complete(self, id: str, lease: str, result: JSON = None) -> Task:
        body = _some(lease=lease, result=result)
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/complete", body=body)

    async def fail(
        self,
        id: str,
        lease: str,
        error: str,
        *,
        retry_in_ms: Optional[int] = None,
        dead: bool = False,
        temporary: bool = False,
    ) -> Task:
        body = FailItem(id, lease, error, retry_in_ms, dead, temporary).to_json()
        del body["id"]
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/fail", body=body)

    async def complete_batch(self, items: Sequence[CompleteItem]) -> List[ItemOutcome]:
        """Completes several tasks in one commit; one outcome per item, in order."""
        body = {"items": [i.to_json() for i in items]}
        return await self._many(ItemOutcome, "items", "POST", "/v1/tasks/complete", body=body)

    async def fail_batch(self, items: Sequence[FailItem]) -> List[ItemOutcome]:
        body = {"items": [i.to_json() for i in items]}
        return await self._many(ItemOutcome, "items", "POST", "/v1/tasks/fail", body=body)

    # ---- queues -------------------------------------------------------------------------------

    async def queues(self) -> List[QueueInfo]:
        return await self._many(QueueInfo, "queues", "GET", "/v1/queues")

    async def queue(self, queue: str) -> QueueStats:
        """Settings, counts by state, and what the flow-control limits hold back now."""
        return await self._one(QueueStats, "GET", f"/v1/queues/{seg(queue)}")

    async def update_queue(
        self,
        queue: str,
        *,
        max_attempts: Any = UNSET,
        backoff: Any = UNSET,
        lease_ms: Any = UNSET,
        retention_ms: Any = UNSET,
        paused: Any = UNSET,
        concurrency: Any = UNSET,
        rate: Any = UNSET,
        group_concurrency: Any = UNSET,
        group_rate: Any = UNSET,
        callback_url: Any = UNSET,
    ) -> QueueInfo:
        """Changes the fields given (``None`` lifts a limit); creates the queue if needed.
        ``backoff`` is a :class:`Backoff`, ``rate`` and ``group_rate`` :class:`Rate`."""
        body = _patch(
            max_attempts=max_attempts,
            backoff=backoff,
            lease_ms=lease_ms,
            retention_ms=retention_ms,
            paused=paused,
            concurrency=concurrency,
            rate=rate,
            group_concurrency=group_concurrency,
            group_rate=group_rate,
            callback_url=callback_url,
        )
        return await self._one(QueueInfo, "PATCH", f"/v1/queues/{seg(queue)}", body=body)

    async def pause_queue(self, queue: str) -> QueueInfo:
        return await self._one(QueueInfo, "POST", f"/v1/queues/{seg(queue)}/pause")

    async def resume_queue(self, queue: str) -> QueueInfo:
        return await self._one(QueueInfo, "POST", f"/v1/queues/{seg(queue)}/resume")

    async def purge(self, queue: str, state: str) -> int:
        """Deletes the queue's ``dead``, ``succeeded`` or ``cancelled`` tasks now; answers how many."""
        out = await self._json("DELETE", f"/v1/queues/{seg(queue)}/tasks", params=query(state=state))
        return int(out["deleted"])

    async def dead_letters(self, queue: str, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> TaskPage:
        """The queue's dead tasks (its dead-letter queue), newest first."""
        return await self.list_tasks(queue, state="dead", limit=limit, cursor=cursor)

    async def groups(self, queue: str, *, after: Optional[str] = None, limit: Optional[int] = None) -> GroupPage:
        params = query(after=after, limit=limit)
        return await self._one(GroupPage, "GET", f"/v1/queues/{seg(queue)}/groups", params=params)

    async def put_group(
        self,
        queue: str,
        group: str,
        *,
        concurrency: Optional[int] = None,
        rate: Optional[Rate] = None,
        paused: Optional[bool] = None,
        weight: Optional[int] = None,
    ) -> GroupInfo:
        """Sets one group's own limits; with none given, removes them."""
        body = _some(concurrency=concurrency, rate=rate, paused=paused, weight=weight)
        return await self._one(GroupInfo, "PUT", f"/v1/queues/{seg(queue)}/groups/{seg(group)}", body=body)

    # ---- events -------------------------------------------------------------------------------

    async def events(
        self,
        *,
        after: Optional[int] = None,
        types: Optional[Sequence[str]] = None,
        queue: Optional[str] = None,
        limit: Optional[int] = None,
        wait_ms: Optional[int] = None,
    ) -> EventPage:
        """A page of the event log, oldest first; continue with ``after=page.next_cursor``."""
        params = query(after=after, types=types, queue=queue, limit=limit, wait_ms=wait_ms)
        return await self._one(EventPage, "GET", "/v1/events", params=params, wait_s=(wait_ms or 0) / 1000)

    async def follow_events(
        self,
        *,
        after: Optional[int] = None,
        types: Optional[Sequence[str]] = None,
        queue: Optional[str] = None,
        reconnect_delay: float = 1.0,
    ) -> AsyncIterator[Event]:
        """Events as they commit (Server-Sent Events), forever. When the connection drops it
        reconnects with ``Last-Event-ID`` and resumes after the last event yielded: nothing is
        missed or repeated. A refusal other than a busy server (503, 429) is raised. A stream
        silent for ``SSE_SILENCE_S`` (the server sends a keep-alive every 15 s) is taken for
        dead and reconnected; reconnects back off from ``reconnect_delay`` to 5 s, and start
        again from it once an event arrives."""
        cursor = after
        delay = reconnect_delay
        while True:
            headers = {"accept": "text/event-stream"}
            if cursor is not None:
                headers["last-event-id"] = str(cursor)
            params = query(types=types, queue=queue)
            request_id = _http.new_request_id()
            try:
                async with self._http.stream(
                    "GET",
                    "/v1/events/stream",
                    params=params,
                    headers=_http.request_headers(request_id, headers),
                    timeout=httpx.Timeout(self._config.timeout, read=SSE_SILENCE_S),
                ) as response:
                    if response.status_code >= 400:
                        raise _http.error_from(response, await response.aread())
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        message = parser.feed(line)
                        if message is None or not message.data:
                            continue
                        event = decode(Event, _http.read_json(message.data.encode()))
                        cursor = event.cursor
                        delay = reconnect_delay
                        yield event
            except (httpx.TransportError, RateLimited, Unavailable) as e:
                if isinstance(e, ApiError) and e.retry_after:
                    await asyncio.sleep(e.retry_after)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(reconnect_delay, 5.0))

    async def event_ticket(self) -> Ticket:
        """A one-minute ticket for a browser's ``EventSource`` (``?ticket=``)."""
        return await self._one(Ticket, "POST", "/v1/events/tickets")

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
        body = _some(
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
        body = _some(url=url, events=list(events), queues=list(queues) if queues else None, description=description)
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
        body = _some(
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
        body = _some(grace_ms=grace_ms)
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
        return await self._one(CallbackSecret, "POST", "/v1/callbacks/rotate-secret", body=_some(grace_ms=grace_ms))

    # ---- access control -----------------------------------------------------------------------

    async def whoami(self) -> WhoAmI:
        return await self._one(WhoAmI, "GET", "/v1/whoami")

    async def tenants(self) -> List[Tenant]:
        return await self._many(Tenant, "tenants", "GET", "/v1/admin/tenants")

    async def tenant(self, name: str) -> Tenant:
        return await self._one(Tenant, "GET", f"/v1/admin/tenants/{seg(name)}")

    async def create_tenant(
        self,
        name: str,
        *,
        limits: Optional[ClientLimits] = None,
        event_retention_ms: Optional[int] = None,
    ) -> Tenant:
        body = _some(name=name, limits=limits, event_retention_ms=event_retention_ms)
        return await self._one(Tenant, "POST", "/v1/admin/tenants", body=body)

    async def update_tenant(self, name: str, *, limits: Any = UNSET, event_retention_ms: Any = UNSET) -> Tenant:
        """Changes the fields given; ``event_retention_ms=None`` goes back to the default."""
        body = _patch(limits=limits, event_retention_ms=event_retention_ms)
        return await self._one(Tenant, "PATCH", f"/v1/admin/tenants/{seg(name)}", body=body)

    async def delete_tenant(self, name: str) -> None:
        """Deletes the tenant with its queues, tasks, keys and roles."""
        await self._send("DELETE", f"/v1/admin/tenants/{seg(name)}")

    async def keys(self) -> List[Key]:
        return await self._many(Key, "keys", "GET", "/v1/keys")

    async def key(self, id: str) -> Key:
        return await self._one(Key, "GET", f"/v1/keys/{seg(id)}")

    async def create_key(
        self,
        roles: Sequence[str],
        *,
        name: Optional[str] = None,
        queues: Optional[Sequence[str]] = None,
        expires_at: Optional[datetime] = None,
        expires_in_s: Optional[int] = None,
        limits: Optional[ClientLimits] = None,
    ) -> CreatedKey:
        """A new API key; its ``token`` is in this answer only."""
        body = _some(
            roles=list(roles),
            name=name,
            queues=list(queues) if queues is not None else None,
            expires_at=expires_at,
            expires_in_s=expires_in_s,
            limits=limits,
        )
        return await self._one(CreatedKey, "POST", "/v1/keys", body=body)

    async def revoke_key(self, id: str) -> Key:
        return await self._one(Key, "DELETE", f"/v1/keys/{seg(id)}")

    async def revoke_key_sessions(self, id: str) -> Key:
        """Ends every dashboard session of the key; the key keeps working."""
        return await self._one(Key, "POST", f"/v1/keys/{seg(id)}/sessions/revoke")

    async def roles(self) -> List[Role]:
        return await self._many(Role, "roles", "GET", "/v1/roles")

    async def role(self, name: str) -> Role:
        return await self._one(Role, "GET", f"/v1/roles/{seg(name)}")

    async def put_role(self, name: str, rules: Sequence[Rule]) -> Role:
        body = {"rules": [r.to_json() for r in rules]}
        return await self._one(Role, "PUT", f"/v1/roles/{seg(name)}", body=body)

    async def delete_role(self, name: str) -> None:
        await self._send("DELETE", f"/v1/roles/{seg(name)}")

    # ---- operations ---------------------------------------------------------------------------

    async def workers(self) -> List[WorkerProcess]:
        """Worker processes connected through the Faktory door."""
        return await self._many(WorkerProcess, "workers", "GET", "/v1/workers")

    async def quiet_worker(self, wid: str) -> WorkerProcess:
        return await self._one(WorkerProcess, "POST", f"/v1/workers/{seg(wid)}/quiet")

    async def terminate_worker(self, wid: str) -> WorkerProcess:
        return await self._one(WorkerProcess, "POST", f"/v1/workers/{seg(wid)}/terminate")

    async def maintenance(self) -> Optional[Maintenance]:
        out = await self._json("GET", "/v1/admin/maintenance")
        return None if out.get("maintenance") is None else decode(Maintenance, out["maintenance"])

    async def set_maintenance(
        self, mode: str, message: str, *, until: Optional[datetime] = None
    ) -> Optional[Maintenance]:
        """``mode`` ``"on"`` refuses writes and claims; ``"announce"`` only shows the banner."""
        body = _some(mode=mode, message=message, until=until)
        out = await self._json("PUT", "/v1/admin/maintenance", body=body)
        return None if out.get("maintenance") is None else decode(Maintenance, out["maintenance"])

    async def end_maintenance(self) -> None:
        await self._send("DELETE", "/v1/admin/maintenance")

    async def doctor(self, *, queue: Optional[str] = None) -> DoctorReport:
        return await self._one(DoctorReport, "GET", "/v1/doctor", params=query(queue=queue))

    async def healthy(self) -> bool:
        """True when ``/healthz`` answers 200. A probe: asks once, never retries."""
        try:
            response = await self._http.get("/healthz", timeout=2.0)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    async def ready(self) -> Readiness:
        """``/readyz``: ``ok`` when the store's writers run; otherwise (503) each part by name.
        A probe: asks once."""
        try:
            response = await self._http.get("/readyz", timeout=2.0)
        except httpx.TransportError as e:
            raise _http.to_transport_error(e, "GET", "/readyz") from e
        return decode(Readiness, _http.read_json(response.content))

    async def metrics(self) -> str:
        """The Prometheus text of ``/metrics``."""
        return (await self._send("GET", "/metrics")).text

    async def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI document."""
        out: Dict[str, Any] = await self._json("GET", "/openapi.json")
        return out
