"""The API's objects as typed dataclasses, shared by the sync and async clients.

Field names are the JSON names. ``payload``, ``result``, ``progress`` and an event's ``data``
are any JSON and are passed through as decoded (``JSON``).

The task models and the workflow models are written in modules of their own
(``_task_models.py``, ``_workflow_models.py``) and re-exported here: import them from this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Literal, Optional, Tuple

from ._task_models import (
    FINAL_STATES,
    JSON,
    TASK_STATES,
    AttemptError,
    BatchSummary,
    CompleteItem,
    DependencyResult,
    EnqueuedTask,
    ErrorDetail,
    FailItem,
    ItemOutcome,
    Lease,
    NewTask,
    StateCounts,
    Task,
    TaskPage,
)
from ._workflow_models import (
    WORKFLOW_STATES,
    NewBatchTask,
    NewWorkflowTask,
    Spawned,
    Workflow,
    WorkflowPage,
    WorkflowTask,
)

# ---- queues and flow control ------------------------------------------------------------------


@dataclass
class Backoff:
    base_ms: int
    max_ms: int


@dataclass
class Rate:
    """At most ``limit`` starts in any window of ``period_ms``; ``burst`` may start at once."""

    limit: int
    period_ms: int
    burst: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"limit": self.limit, "period_ms": self.period_ms}
        if self.burst is not None:
            out["burst"] = self.burst
        return out


@dataclass
class QueueSettings:
    max_attempts: int
    backoff: Backoff
    lease_ms: int
    retention_ms: int
    paused: bool
    concurrency: Optional[int] = None
    rate: Optional[Rate] = None
    group_concurrency: Optional[int] = None
    group_rate: Optional[Rate] = None
    callback_url: Optional[str] = None


@dataclass
class QueueInfo:
    name: str
    settings: QueueSettings
    counts: StateCounts
    created_at: datetime
    oldest_ready_age_ms: Optional[int] = None
    last_claim_at: Optional[datetime] = None
    next_start_at: Optional[datetime] = None
    shard: Optional[int] = None


@dataclass
class GroupSettings:
    concurrency: Optional[int] = None
    rate: Optional[Rate] = None
    paused: bool = False
    weight: Optional[int] = None


@dataclass
class GroupInfo:
    group: str
    ready: int
    running: int
    settings: GroupSettings
    concurrency: Optional[int] = None
    rate: Optional[Rate] = None
    held_by: Optional[str] = None
    next_start_at: Optional[datetime] = None
    oldest_ready_age_ms: Optional[int] = None


@dataclass
class GroupPage:
    groups: List[GroupInfo]
    next: Optional[str] = None


@dataclass
class Held:
    """Ready tasks each limit holds back now."""

    queue_paused: int = 0
    queue_concurrency: int = 0
    queue_rate: int = 0
    group_paused: int = 0
    group_concurrency: int = 0
    group_rate: int = 0


@dataclass
class FlowStats:
    running: int
    held: Held
    busiest_groups: List[GroupInfo]
    groups_seen: int
    groups_complete: bool
    concurrency: Optional[int] = None
    rate: Optional[Rate] = None
    next_start_at: Optional[datetime] = None
    longest_waiting_group: Optional[GroupInfo] = None
    median_group_wait_ms: Optional[int] = None


@dataclass
class QueueStats(QueueInfo):
    """One queue as ``GET /v1/queues/{queue}`` shows it, with what its limits hold back."""

    flow: Optional[FlowStats] = None


# ---- events ------------------------------------------------------------------------------------


@dataclass
class Event:
    cursor: int
    type: str
    at: datetime
    queue: str
    kind: str
    attempt: int
    data: JSON = None
    task_id: Optional[str] = None


@dataclass
class EventPage:
    events: List[Event]
    next_cursor: int


@dataclass
class Ticket:
    ticket: str
    expires_at: datetime


# ---- schedules ---------------------------------------------------------------------------------


@dataclass
class ScheduleRun:
    tick: datetime
    fired_at: datetime
    task_id: Optional[str] = None
    outcome: Optional[str] = None
    skipped: Optional[str] = None
    trigger: Optional[str] = None


@dataclass
class Schedule:
    name: str
    queue: str
    kind: str
    priority: int
    jitter_ms: int
    catch_up: str
    overlap: str
    paused: bool
    timezone: str
    created_at: datetime
    updated_at: datetime
    runs: List[ScheduleRun] = field(default_factory=list)
    cron: Optional[str] = None
    every_ms: Optional[int] = None
    payload: JSON = None
    max_attempts: Optional[int] = None
    next_run_at: Optional[datetime] = None
    group: Optional[str] = None


# ---- webhooks ----------------------------------------------------------------------------------


@dataclass
class Webhook:
    id: str
    url: str
    events: List[str]
    queues: List[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    description: Optional[str] = None
    secret: Optional[str] = None
    """Only when created or rotated: the signing secret, shown this once."""
    previous_secret_until: Optional[datetime] = None
    disabled_reason: Optional[str] = None
    failing_since: Optional[datetime] = None


@dataclass
class Delivery:
    id: int
    webhook_id: str
    state: str
    attempts: int
    event: Event
    created_at: datetime
    last_status: Optional[int] = None
    last_error: Optional[str] = None
    latency_ms: Optional[int] = None
    next_attempt_at: Optional[datetime] = None
    delivered_at: Optional[datetime] = None


@dataclass
class DeliveryPage:
    deliveries: List[Delivery]
    next_cursor: Optional[int] = None


@dataclass
class CallbackSecret:
    """The tenant's secret for task results sent to ``callback_url``."""

    configured: bool
    secret: Optional[str] = None
    previous_secret_until: Optional[datetime] = None


# ---- inbound webhooks (hooks) -----------------------------------------------------------------


@dataclass
class Hook:
    """An inbound webhook: a provider's requests to ``url`` (no bearer token; proven by the
    ``verify`` rule with the hook's secret) become tasks of ``queue`` and ``kind``, with the
    payload ``{"body": ..., "headers": {...}}``."""

    id: str
    name: str
    url: str
    """Where the provider sends: ``POST`` here, no bearer token."""
    queue: str
    kind: str
    verify: str
    """``github``, ``gitlab``, ``hmac-sha256`` (Rota's own webhooks) or ``stripe``."""
    enabled: bool
    created_at: datetime
    updated_at: datetime
    description: Optional[str] = None
    owner: Optional[str] = None
    """The credential its requests enqueue as (its last writer)."""
    previous_secret_until: Optional[datetime] = None
    """Until when the secret before the last rotation is still accepted."""
    secret: Optional[str] = None
    """Only when created or rotated: the secret, shown this once."""


HookOutcome = Literal["received", "duplicate", "rejected"]
"""What became of a request to a hook (the API's ``Outcome``)."""

HOOK_OUTCOMES: Tuple[HookOutcome, ...] = ("received", "duplicate", "rejected")


@dataclass
class HookRequest:
    """One request a hook answered (:meth:`Client.hook_requests`, newest first)."""

    at: datetime
    outcome: HookOutcome
    """``received`` (a task was enqueued), ``duplicate`` (a redelivery: the earlier task was
    found) or ``rejected``."""
    status: int
    """The HTTP status it was answered with."""
    address: str
    reason: Optional[str] = None
    """Why it was rejected (``<code>: <message>``)."""
    delivery: Optional[str] = None
    """The provider's delivery id."""
    task_id: Optional[str] = None


# ---- OAuth 2.0 client credentials --------------------------------------------------------------


@dataclass
class AccessToken:
    """An access token from ``POST /oauth/token`` (:meth:`Client.fetch_token`): sent as
    ``Authorization: Bearer``, it acts as its API key narrowed to ``scope``, until it expires
    or the key is revoked."""

    access_token: str = field(repr=False)
    token_type: str
    """``Bearer``."""
    expires_in: int
    """Seconds it lasts from when it was issued."""
    scope: str
    """What it may do (space-separated): the scope asked for, or the actions the key's roles
    allow."""


# ---- access control ----------------------------------------------------------------------------


@dataclass
class ClientLimits:
    requests_per_minute: Optional[int] = None
    max_in_flight: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class Key:
    id: str
    tenant: str
    roles: List[str]
    queues: List[str]
    limits: ClientLimits
    created_at: datetime
    name: Optional[str] = None
    expires_at: Optional[datetime] = None
    last_used_at: Optional[datetime] = None
    revoked_at: Optional[datetime] = None
    rotated_at: Optional[datetime] = None
    """When its secret was last rotated (:meth:`Client.rotate_key`)."""
    previous_secret_until: Optional[datetime] = None
    """Until when the secret before the last rotation is still accepted; None when none is."""


@dataclass
class CreatedKey(Key):
    token: str = ""
    """The bearer token, shown this once."""


@dataclass
class Rule:
    resource: str
    action: str
    effect: str = "allow"

    def to_json(self) -> Dict[str, Any]:
        return {"resource": self.resource, "action": self.action, "effect": self.effect}


@dataclass
class Role:
    name: str
    builtin: bool
    rules: List[Rule]
    updated_at: Optional[datetime] = None


@dataclass
class Tenant:
    name: str
    created_at: datetime
    limits: Optional[ClientLimits] = None
    event_retention_ms: Optional[int] = None


@dataclass
class Maintenance:
    message: str
    by: str
    since: datetime
    refusing: bool
    until: Optional[datetime] = None


@dataclass
class WhoAmI:
    principal: str
    tenant: str
    acting_tenant: str
    roles: List[str]
    queues: List[str]
    kinds: Optional[List[str]] = None
    maintenance: Optional[Maintenance] = None


# ---- the audit log -----------------------------------------------------------------------------


@dataclass
class AuditEntry:
    """One administrative change (:meth:`Client.audit`): who made it, where, what it was done
    to and, where it matters, the fields before and after."""

    id: str
    """Unique, and with ``at`` the entry's place in the log (newest first); 16 hex digits."""
    at: datetime
    tenant: str
    """The tenant the change was made in (for a server-wide change such as maintenance mode,
    the tenant of whoever made it)."""
    actor: str
    """Who: ``key:<key id>``, ``jwt:<subject>``, ``session:<key id>`` (the dashboard), or
    ``system:<what>`` for the server itself."""
    action: str
    """What, as ``<object>.<verb>``: ``key.create``, ``queue.update``, ``task.cancel``..."""
    target: str
    """What it was done to: ``keys/<id>``, ``queues/<name>``, ``tasks/<id>``..."""
    before: Optional[Dict[str, Any]] = None
    """The changed fields as they were, where it matters (settings, roles, limits)."""
    after: Optional[Dict[str, Any]] = None
    """What was asked: the new settings, the role's rules, the change to a task."""
    request_id: Optional[str] = None
    """The request's ``X-Request-Id``."""
    source: Optional[str] = None
    """The address the request came from."""


@dataclass
class AuditPage:
    """A page of the audit log, newest first; pass ``next_cursor`` back as ``cursor`` for the
    next (older) page, ``None`` on the last."""

    entries: List[AuditEntry]
    next_cursor: Optional[str] = None


# ---- operations --------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """A worker process connected through the Faktory door."""

    wid: str
    hostname: str
    pid: int
    labels: List[str]
    connections: int
    connected_at: datetime
    last_beat: Optional[datetime] = None
    signal: Optional[str] = None


@dataclass
class Finding:
    check: str
    severity: str
    subject: str
    seen: str
    cause: str
    fix: str


@dataclass
class DoctorReport:
    ok: bool
    checked_at: datetime
    findings: List[Finding]
    notes: List[str] = field(default_factory=list)


@dataclass
class Readiness:
    """``/readyz`` (and ``/healthz``): ``status`` and each part of the store by name."""

    status: str
    checks: Optional[Dict[str, str]] = None
    maintenance: Optional[Maintenance] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


__all__ = [
    "JSON",
    "HOOK_OUTCOMES",
    "TASK_STATES",
    "FINAL_STATES",
    "WORKFLOW_STATES",
    "AccessToken",
    "AttemptError",
    "AuditEntry",
    "AuditPage",
    "Backoff",
    "BatchSummary",
    "CallbackSecret",
    "ClientLimits",
    "CompleteItem",
    "CreatedKey",
    "DependencyResult",
    "Delivery",
    "DeliveryPage",
    "DoctorReport",
    "EnqueuedTask",
    "ErrorDetail",
    "Event",
    "EventPage",
    "FailItem",
    "Finding",
    "FlowStats",
    "GroupInfo",
    "GroupPage",
    "GroupSettings",
    "Held",
    "Hook",
    "HookOutcome",
    "HookRequest",
    "ItemOutcome",
    "Key",
    "Lease",
    "Maintenance",
    "NewBatchTask",
    "NewTask",
    "NewWorkflowTask",
    "QueueInfo",
    "QueueSettings",
    "QueueStats",
    "Rate",
    "Readiness",
    "Role",
    "Rule",
    "Schedule",
    "ScheduleRun",
    "Spawned",
    "StateCounts",
    "Task",
    "TaskPage",
    "Tenant",
    "Ticket",
    "Webhook",
    "WhoAmI",
    "WorkerProcess",
    "Workflow",
    "WorkflowPage",
    "WorkflowTask",
]
