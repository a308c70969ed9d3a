"""The asyncio client. ``_sync_client.py`` is generated from this file by
``scripts/unasync.py``: edit this one and run the script."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Type, TypeVar

import httpx

from . import _http
from ._async_admin import AsyncAdmin
from ._async_hooks import AsyncHooks
from ._async_workflows import AsyncWorkflows
from ._body import UNSET, patch, some
from ._decode import decode, decode_list
from ._http import query, seg
from ._oauth import AsyncTokenCache, Scope, token_form
from ._sse import SseParser
from .errors import ApiError, RateLimited, Unauthorized, Unavailable
from .models import (
    JSON,
    AccessToken,
    CompleteItem,
    EnqueuedTask,
    Event,
    EventPage,
    FailItem,
    GroupInfo,
    GroupPage,
    ItemOutcome,
    NewTask,
    QueueInfo,
    QueueStats,
    Rate,
    Task,
    TaskPage,
    Ticket,
)

M = TypeVar("M")


#: A live event stream silent this long is dead: three of the server's 15 s keep-alives missed.
SSE_SILENCE_S = 45.0

_NO_BODY: Any = object()


class AsyncClient(AsyncWorkflows, AsyncHooks, AsyncAdmin):
    """A client for Rota's HTTP API.

    ``url``, ``token`` and ``tenant`` default to ``ROTA_URL`` (else ``http://127.0.0.1:7070``),
    ``ROTA_TOKEN`` and ``ROTA_TENANT``. ``timeout`` (seconds) bounds each request; long polls
    get their wait on top. Reads are tried ``read_attempts`` times when no answer comes; writes
    once, since a write whose answer was lost may have happened. Every request carries an
    ``X-Request-Id``, which errors carry back as ``request_id``.

    With ``client_id`` and ``client_secret`` (an API key's id and whole token) instead of a
    ``token``, the client authenticates by OAuth 2.0 client credentials: it fetches an access
    token (narrowed to ``scope`` when given) on first use, fetches a new one shortly before it
    expires, and on a 401 fetches one more and tries the request once more.

    Workflows, batches and spawning tasks from a running task: see :class:`AsyncWorkflows`;
    schedules, webhooks and callbacks: :class:`AsyncHooks`; tenants, keys, roles and operations:
    :class:`AsyncAdmin`.
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
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        scope: Scope = None,
    ) -> None:
        self._tokens: Optional[AsyncTokenCache] = None
        if client_id is not None or client_secret is not None:
            if client_id is None or client_secret is None:
                raise ValueError("client credentials need both client_id and client_secret")
            if token is not None:
                raise ValueError("give a token or client credentials, not both")
            token = ""  # and not ROTA_TOKEN: the access tokens are the credential
            key: str = client_id
            secret: str = client_secret
            self._tokens = AsyncTokenCache(lambda: self.fetch_token(key, secret, scope=scope))
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
        """The answer to one request: retried when a read gets none, raised when an error.
        With client credentials, a 401 drops the access token and the request is sent once more
        with a new one (it was refused, so nothing happened)."""
        request_id = _http.new_request_id()
        content = None if body is _NO_BODY else _http.dump(body)
        hdrs = _http.request_headers(request_id, headers)
        if content is not None:
            hdrs["content-type"] = "application/json"
        attempts = self._config.read_attempts if _http.is_read(method) else 1
        attempt = 0
        refreshed = False
        while True:
            bearer = await self._bearer(hdrs)
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    content=content,
                    headers=hdrs,
                    timeout=self._config.timeout + wait_s,
                )
            except httpx.TransportError as e:
                attempt += 1
                if attempt >= attempts:
                    raise _http.to_transport_error(e, method, path) from e
                await asyncio.sleep(_http.retry_delay(attempt))
                continue
            if response.status_code == 401 and self._tokens is not None and not refreshed:
                self._tokens.refused(bearer)
                refreshed = True
                continue
            break
        if response.status_code >= 400:
            raise _http.error_from(response, response.content)
        return response

    async def _bearer(self, headers: Dict[str, str]) -> str:
        """With client credentials, sets the access token in ``headers`` and answers it."""
        if self._tokens is None:
            return ""
        bearer = await self._tokens.token()
        headers["authorization"] = f"Bearer {bearer}"
        return bearer

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._send(method, path, **kw)
        return _http.read_json(response.content)

    async def _one(self, cls: Type[M], method: str, path: str, **kw: Any) -> M:
        return decode(cls, await self._json(method, path, **kw))

    async def _many(self, cls: Type[M], key: str, method: str, path: str, **kw: Any) -> List[M]:
        return decode_list(cls, (await self._json(method, path, **kw))[key])

    # ---- OAuth 2.0 ----------------------------------------------------------------------------

    async def fetch_token(self, client_id: str, client_secret: str, *, scope: Scope = None) -> AccessToken:
        """Exchanges an API key's id and whole token (``rota_<id>_<secret>``) for an access
        token (``POST /oauth/token``, the OAuth 2.0 client credentials grant), narrowed to
        ``scope`` when given: actions (``tasks:claim``, ``tasks:*``) and queue patterns
        (``queues/emails-*``), space-separated or as a list. Sent without this client's own
        credential. A refusal raises :class:`ApiError` whose ``code`` is OAuth's ``error``:
        ``invalid_client`` (:class:`Unauthorized`, 401), ``invalid_scope`` or ``invalid_request``
        (:class:`InvalidRequest`, 400), and past too many failures :class:`RateLimited`."""
        request = self._http.build_request(
            "POST",
            "/oauth/token",
            data=token_form(client_id, client_secret, scope),
            headers=_http.request_headers(_http.new_request_id()),
            timeout=self._config.timeout,
        )
        request.headers.pop("authorization", None)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as e:
            raise _http.to_transport_error(e, "POST", "/oauth/token") from e
        if response.status_code >= 400:
            raise _http.error_from(response, response.content)
        return decode(AccessToken, _http.read_json(response.content))

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
        traceparent: Optional[str] = None,
        tracestate: Optional[str] = None,
    ) -> EnqueuedTask:
        """Enqueues one task; with ``unique_key``, a live holder of the key is answered instead
        (``duplicate``), or rewritten in place with ``on_duplicate="replace"`` (``replaced``).
        With ``depends_on`` (task ids, any queue) it is ``waiting`` until they all succeed; one
        that ends dead or cancelled cancels it, or with ``on_dependency_failure="run"`` it runs
        anyway. ``traceparent`` (and ``tracestate``) is the W3C trace context the task continues;
        without it the server takes the request's headers, if any."""
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
            traceparent=traceparent,
            tracestate=tracestate,
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
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/kill", body=some(reason=reason))

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
        body = some(worker=worker, max=max, kinds=list(kinds) if kinds else None, wait_ms=wait_ms, lease_ms=lease_ms)
        wait_s = (wait_ms or 0) / 1000
        return await self._many(Task, "tasks", "POST", f"/v1/queues/{seg(queue)}/claim", body=body, wait_s=wait_s)

    async def heartbeat(self, id: str, lease: str, *, lease_ms: Optional[int] = None, progress: JSON = None) -> Task:
        """Extends the lease; raises :class:`TaskCancelled` or :class:`LeaseLost` when the
        worker must stop."""
        body = some(lease=lease, lease_ms=lease_ms, progress=progress)
        return await self._one(Task, "POST", f"/v1/tasks/{seg(id)}/heartbeat", body=body)

    async def complete(self, id: str, lease: str, result: JSON = None) -> Task:
        body = some(lease=lease, result=result)
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
        body = patch(
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
        body = some(concurrency=concurrency, rate=rate, paused=paused, weight=weight)
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
        refreshed = False
        while True:
            headers = {"accept": "text/event-stream"}
            if cursor is not None:
                headers["last-event-id"] = str(cursor)
            params = query(types=types, queue=queue)
            request_id = _http.new_request_id()
            bearer = ""
            try:
                bearer = await self._bearer(headers)
                async with self._http.stream(
                    "GET",
                    "/v1/events/stream",
                    params=params,
                    headers=_http.request_headers(request_id, headers),
                    timeout=httpx.Timeout(self._config.timeout, read=SSE_SILENCE_S),
                ) as response:
                    if response.status_code >= 400:
                        raise _http.error_from(response, await response.aread())
                    refreshed = False
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        message = parser.feed(line)
                        if message is None or not message.data:
                            continue
                        event = decode(Event, _http.read_json(message.data.encode()))
                        cursor = event.cursor
                        delay = reconnect_delay
                        yield event
            except Unauthorized:
                if self._tokens is None or refreshed:
                    raise
                # With client credentials: once more with a new access token.
                self._tokens.refused(bearer)
                refreshed = True
                continue
            except (httpx.TransportError, RateLimited, Unavailable) as e:
                if isinstance(e, ApiError) and e.retry_after:
                    await asyncio.sleep(e.retry_after)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(reconnect_delay, 5.0))

    async def event_ticket(self) -> Ticket:
        """A one-minute ticket for a browser's ``EventSource`` (``?ticket=``)."""
        return await self._one(Ticket, "POST", "/v1/events/tickets")
