"""The asyncio client's administration methods: access control (tenants, API keys, roles), the
audit log and operations (Faktory workers, maintenance, the doctor, health probes, metrics).
:class:`AsyncClient` takes them in as a mixin. ``_sync_admin.py`` is generated from this file by
``scripts/unasync.py``: edit this one and run the script."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, List, Optional, Sequence, Type, TypeVar

import httpx

from . import _http
from ._body import UNSET, patch, some
from ._decode import decode, format_time
from ._http import query, seg
from .models import (
    AuditEntry,
    AuditPage,
    ClientLimits,
    CreatedKey,
    DoctorReport,
    Key,
    Maintenance,
    Readiness,
    Role,
    Rule,
    Tenant,
    WhoAmI,
    WorkerProcess,
)

M = TypeVar("M")


class AsyncAdmin:
    """Tenants, API keys and roles; the audit log; worker processes, maintenance and the server's
    health."""

    if TYPE_CHECKING:  # the client's plumbing, which the class using this mixin has
        _http: httpx.AsyncClient

        async def _send(self, method: str, path: str) -> httpx.Response: ...

        async def _json(self, method: str, path: str, **kw: Any) -> Any: ...

        async def _one(self, cls: Type[M], method: str, path: str, **kw: Any) -> M: ...

        async def _many(self, cls: Type[M], key: str, method: str, path: str, **kw: Any) -> List[M]: ...

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
        body = some(name=name, limits=limits, event_retention_ms=event_retention_ms)
        return await self._one(Tenant, "POST", "/v1/admin/tenants", body=body)

    async def update_tenant(self, name: str, *, limits: Any = UNSET, event_retention_ms: Any = UNSET) -> Tenant:
        """Changes the fields given; ``event_retention_ms=None`` goes back to the default."""
        body = patch(limits=limits, event_retention_ms=event_retention_ms)
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
        body = some(
            roles=list(roles),
            name=name,
            queues=list(queues) if queues is not None else None,
            expires_at=expires_at,
            expires_in_s=expires_in_s,
            limits=limits,
        )
        return await self._one(CreatedKey, "POST", "/v1/keys", body=body)

    async def rotate_key(self, id: str, *, grace_ms: Optional[int] = None) -> CreatedKey:
        """A new secret for the key, which keeps its id, roles and limits; the new ``token`` is in
        this answer only. The old secret is still accepted for ``grace_ms`` (0 to 259,200,000;
        the server's default is a day), until ``previous_secret_until``."""
        body = some(grace_ms=grace_ms)
        return await self._one(CreatedKey, "POST", f"/v1/keys/{seg(id)}/rotate", body=body)

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

    # ---- the audit log ------------------------------------------------------------------------

    async def audit(
        self,
        *,
        tenant: Optional[str] = None,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        target: Optional[str] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> AuditPage:
        """One page of the audit log (every administrative change), newest first; pass
        ``next_cursor`` back as ``cursor`` for the next. Needs ``audit:read`` (the ``admin`` and
        ``tenant-admin`` roles). An admin reads every tenant's entries, or ``tenant``'s; anyone
        else only their own tenant's. ``actor`` (``key:<id>``, ``jwt:<subject>``) and ``target``
        (``queues/<name>``, ``keys/<id>``) match exactly; ``action`` is one action
        (``key.create``), or every action of an object when it ends with a dot (``key.``).
        ``since`` is inclusive, ``until`` exclusive; ``limit`` 1 to 500 (the server's default is
        100)."""
        params = query(
            tenant=tenant,
            actor=actor,
            action=action,
            target=target,
            since=None if since is None else format_time(since),
            until=None if until is None else format_time(until),
            cursor=cursor,
            limit=limit,
        )
        return await self._one(AuditPage, "GET", "/v1/audit", params=params)

    async def iter_audit(
        self,
        *,
        tenant: Optional[str] = None,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        target: Optional[str] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[AuditEntry]:
        """Every entry of the audit log that the filters match (newest first), page by page."""
        cursor: Optional[str] = None
        while True:
            page = await self.audit(
                tenant=tenant,
                actor=actor,
                action=action,
                target=target,
                since=since,
                until=until,
                cursor=cursor,
                limit=page_size,
            )
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

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
        body = some(mode=mode, message=message, until=until)
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
