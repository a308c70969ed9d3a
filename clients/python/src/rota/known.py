"""What this library knows of the API, as data: each operation (method and path) with the
client method that calls it, and each component schema of the server's OpenAPI document with
the fields the library reads or sends. ``tests/test_openapi_coverage.py`` (S15) compares this
with a live server's ``/openapi.json``: a new operation or field there fails it until it is
added here (and to the code).

Response schemas are read from the model dataclasses themselves, so a field a model lacks is
not "known". Request bodies are the keyword arguments of the methods named beside them.
Fields passed through untyped (any JSON) are listed in :data:`UNTYPED`.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Tuple, Union

from . import models as m
from ._decode import wire_fields

# (method, path) -> the Client / AsyncClient method; None where it is deliberately not wrapped
# (the reason beside it).
OPERATIONS: Dict[Tuple[str, str], Optional[str]] = {
    ("GET", "/healthz"): "healthy",
    ("POST", "/oauth/token"): "fetch_token",
    # The public keys access tokens are signed with, for a service that checks them itself;
    # the client only sends its tokens to the server, which checks them.
    ("GET", "/.well-known/jwks.json"): None,
    ("GET", "/metrics"): "metrics",
    ("GET", "/openapi.json"): "openapi",
    ("GET", "/readyz"): "ready",
    ("GET", "/v1/admin/maintenance"): "maintenance",
    ("PUT", "/v1/admin/maintenance"): "set_maintenance",
    ("DELETE", "/v1/admin/maintenance"): "end_maintenance",
    ("GET", "/v1/admin/tenants"): "tenants",
    ("POST", "/v1/admin/tenants"): "create_tenant",
    ("GET", "/v1/admin/tenants/{tenant}"): "tenant",
    ("DELETE", "/v1/admin/tenants/{tenant}"): "delete_tenant",
    ("PATCH", "/v1/admin/tenants/{tenant}"): "update_tenant",
    ("GET", "/v1/audit"): "audit",
    ("GET", "/v1/callbacks"): "callbacks",
    ("POST", "/v1/callbacks/rotate-secret"): "rotate_callback_secret",
    ("GET", "/v1/doctor"): "doctor",
    ("GET", "/v1/events"): "events",
    ("GET", "/v1/events/stream"): "follow_events",
    ("POST", "/v1/events/tickets"): "event_ticket",
    # The same stream as a WebSocket, for browsers; follow_events (SSE) is the client's follow.
    ("GET", "/v1/events/ws"): None,
    ("GET", "/v1/hooks"): "hooks",
    ("POST", "/v1/hooks"): "create_hook",
    ("GET", "/v1/hooks/{id}"): "hook",
    ("PATCH", "/v1/hooks/{id}"): "update_hook",
    ("DELETE", "/v1/hooks/{id}"): "delete_hook",
    ("POST", "/v1/hooks/{id}/rotate-secret"): "rotate_hook_secret",
    ("GET", "/v1/hooks/{id}/requests"): "hook_requests",
    # A provider's request to an inbound webhook (GitHub, GitLab, Stripe, a Rota webhook; its
    # body JSON or text), proven by its signature, not by an API token: not the API client's
    # to send.
    ("POST", "/hooks/{id}"): None,
    ("GET", "/v1/keys"): "keys",
    ("POST", "/v1/keys"): "create_key",
    ("GET", "/v1/keys/{id}"): "key",
    ("DELETE", "/v1/keys/{id}"): "revoke_key",
    ("POST", "/v1/keys/{id}/rotate"): "rotate_key",
    ("POST", "/v1/keys/{id}/sessions/revoke"): "revoke_key_sessions",
    ("GET", "/v1/queues"): "queues",
    ("GET", "/v1/queues/{queue}"): "queue",
    ("PATCH", "/v1/queues/{queue}"): "update_queue",
    ("POST", "/v1/queues/{queue}/claim"): "claim",
    ("GET", "/v1/queues/{queue}/groups"): "groups",
    ("PUT", "/v1/queues/{queue}/groups/{group}"): "put_group",
    ("POST", "/v1/queues/{queue}/pause"): "pause_queue",
    ("POST", "/v1/queues/{queue}/resume"): "resume_queue",
    ("GET", "/v1/queues/{queue}/tasks"): "list_tasks",
    ("POST", "/v1/queues/{queue}/tasks"): "enqueue",
    ("DELETE", "/v1/queues/{queue}/tasks"): "purge",
    ("GET", "/v1/roles"): "roles",
    ("GET", "/v1/roles/{name}"): "role",
    ("PUT", "/v1/roles/{name}"): "put_role",
    ("DELETE", "/v1/roles/{name}"): "delete_role",
    ("GET", "/v1/schedules"): "schedules",
    ("GET", "/v1/schedules/{name}"): "schedule",
    ("PUT", "/v1/schedules/{name}"): "put_schedule",
    ("DELETE", "/v1/schedules/{name}"): "delete_schedule",
    ("POST", "/v1/schedules/{name}/pause"): "pause_schedule",
    ("POST", "/v1/schedules/{name}/resume"): "resume_schedule",
    ("POST", "/v1/schedules/{name}/trigger"): "trigger_schedule",
    ("POST", "/v1/tasks/complete"): "complete_batch",
    ("POST", "/v1/tasks/fail"): "fail_batch",
    ("GET", "/v1/tasks/{id}"): "get_task",
    ("DELETE", "/v1/tasks/{id}"): "delete_task",
    ("POST", "/v1/tasks/{id}/cancel"): "cancel",
    ("POST", "/v1/tasks/{id}/complete"): "complete",
    ("POST", "/v1/tasks/{id}/fail"): "fail",
    ("POST", "/v1/tasks/{id}/heartbeat"): "heartbeat",
    ("POST", "/v1/tasks/{id}/kill"): "kill",
    ("POST", "/v1/tasks/{id}/retry"): "retry",
    ("POST", "/v1/tasks/{id}/run-now"): "run_now",
    ("GET", "/v1/webhooks"): "webhooks",
    ("POST", "/v1/webhooks"): "create_webhook",
    ("GET", "/v1/webhooks/{id}"): "webhook",
    ("DELETE", "/v1/webhooks/{id}"): "delete_webhook",
    ("PATCH", "/v1/webhooks/{id}"): "update_webhook",
    ("GET", "/v1/webhooks/{id}/deliveries"): "deliveries",
    ("POST", "/v1/webhooks/{id}/deliveries/{delivery}/retry"): "retry_delivery",
    ("POST", "/v1/webhooks/{id}/rotate-secret"): "rotate_webhook_secret",
    ("GET", "/v1/whoami"): "whoami",
    ("GET", "/v1/workers"): "workers",
    ("GET", "/v1/workflows"): "list_workflows",
    ("POST", "/v1/workflows"): "submit_workflow",
    ("GET", "/v1/workflows/{id}"): "get_workflow",
    ("POST", "/v1/workflows/{id}/cancel"): "cancel_workflow",
    ("POST", "/v1/batches"): "submit_batch",
    ("GET", "/v1/batches/{id}"): "get_batch",
    ("POST", "/v1/batches/{id}/tasks"): "add_to_batch",
    ("POST", "/v1/batches/{id}/close"): "close_batch",
    ("POST", "/v1/tasks/{id}/spawn"): "spawn",
    ("POST", "/v1/workers/{wid}/quiet"): "quiet_worker",
    ("POST", "/v1/workers/{wid}/terminate"): "terminate_worker",
}

Source = Union[type, Tuple[str, ...]]

# Component schema -> a model class (its fields) or the field names sent or read by hand.
SCHEMAS: Dict[str, Source] = {
    # responses, read into models
    "Task": m.Task,
    "ClaimedTask": m.Task,  # claim: a Task with its dependencies (and a callback's batch)
    "BatchSummary": m.BatchSummary,
    "DependencyResult": m.DependencyResult,
    "Lease": m.Lease,
    "AttemptError": m.AttemptError,
    "EnqueuedTask": m.EnqueuedTask,
    "TaskList": m.TaskPage,
    "ItemOutcome": m.ItemOutcome,
    "ErrorDetail": m.ErrorDetail,
    "Backoff": m.Backoff,
    "Rate": m.Rate,
    "QueueSettings": m.QueueSettings,
    "StateCounts": m.StateCounts,
    "QueueInfo": m.QueueInfo,
    "QueueStats": m.QueueStats,
    "FlowStats": m.FlowStats,
    "Held": m.Held,
    "GroupInfo": m.GroupInfo,
    "GroupSettings": m.GroupSettings,
    "GroupPage": m.GroupPage,
    "EventBody": m.Event,
    "EventList": m.EventPage,
    "Ticket": m.Ticket,
    "ScheduleOut": m.Schedule,
    "RunOut": m.ScheduleRun,
    "WebhookOut": m.Webhook,
    "HookOut": m.Hook,
    "HookRequest": m.HookRequest,
    "DeliveryOut": m.Delivery,
    "DeliveryList": m.DeliveryPage,
    "CallbacksOut": m.CallbackSecret,
    "KeyInfo": m.Key,
    "CreatedKey": m.CreatedKey,
    "RoleInfo": m.Role,
    "Rule": m.Rule,
    "TenantRecord": m.Tenant,
    "ClientLimits": m.ClientLimits,
    "WhoAmI": m.WhoAmI,
    "Worker": m.WorkerProcess,
    "Maintenance": m.Maintenance,
    "Report": m.DoctorReport,
    "Finding": m.Finding,
    "Status": m.Readiness,
    "Workflow": m.Workflow,
    "WorkflowTask": m.WorkflowTask,
    "WorkflowList": m.WorkflowPage,
    "SpawnedTasks": m.Spawned,
    "TokenResponse": m.AccessToken,
    "AuditEntry": m.AuditEntry,
    "AuditList": m.AuditPage,
    # request bodies: the keyword arguments of the method named
    "TaskInput": m.NewTask,  # enqueue, enqueue_batch
    # submit_workflow (a batch's tasks, NewBatchTask, take the same fields but name and deps)
    "WorkflowTaskInput": m.NewWorkflowTask,
    "WorkflowInput": ("tasks",),  # submit_workflow
    "BatchInput": ("tasks", "callback", "only_on_success", "open"),  # submit_batch
    "AddedTasks": ("tasks",),  # add_to_batch
    "SpawnBody": ("lease", "tasks", "on_dependency_failure"),  # spawn
    "ClaimBody": ("worker", "kinds", "max", "wait_ms", "lease_ms"),  # claim
    "HeartbeatBody": ("lease", "lease_ms", "progress"),  # heartbeat
    "CompleteBody": ("lease", "result"),  # complete
    "CompleteItem": m.CompleteItem,
    "FailBody": ("lease", "error", "retry_in_ms", "dead", "temporary"),  # fail
    "FailItem": m.FailItem,
    "KillBody": ("reason",),  # kill
    "QueuePatchBody": (  # update_queue
        "max_attempts",
        "backoff",
        "lease_ms",
        "retention_ms",
        "paused",
        "concurrency",
        "rate",
        "group_concurrency",
        "group_rate",
        "callback_url",
    ),
    "ScheduleBody": (  # put_schedule
        "queue",
        "cron",
        "every_ms",
        "kind",
        "payload",
        "priority",
        "max_attempts",
        "group",
        "timezone",
        "jitter_ms",
        "catch_up",
        "overlap",
        "paused",
    ),
    "WebhookBody": ("url", "events", "queues", "description"),  # create_webhook
    "WebhookPatchBody": ("url", "events", "queues", "description", "enabled"),  # update_webhook
    "RotateBody": ("grace_ms",),  # rotate_webhook_secret, rotate_callback_secret
    "NewKey": ("roles", "name", "queues", "expires_at", "expires_in_s", "limits"),  # create_key
    "RotateKey": ("grace_ms",),  # rotate_key
    "HookBody": ("name", "queue", "kind", "verify", "secret", "description"),  # create_hook
    "HookPatchBody": ("queue", "kind", "description", "enabled"),  # update_hook
    "HookRotateBody": ("grace_ms", "secret"),  # rotate_hook_secret
    "NewTenant": ("name", "limits", "event_retention_ms"),  # create_tenant
    "TenantPatch": ("limits", "event_retention_ms"),  # update_tenant
    "RoleBody": ("rules",),  # put_role
    "MaintenanceRequest": ("mode", "message", "until"),  # set_maintenance
    "TokenRequest": ("grant_type", "client_id", "client_secret", "scope"),  # fetch_token (a form)
    # envelopes the methods unwrap
    "Claimed": ("tasks",),
    "EnqueuedBatch": ("tasks",),
    "AddedList": ("tasks",),
    "CompleteBatch": ("items",),
    "FailBatch": ("items",),
    "BatchOutcome": ("items",),
    "Deleted": ("deleted",),
    "Purged": ("deleted",),
    "ErrorBody": ("error",),
    # the token endpoint's errors (RFC 6749), read into ApiError's code and message
    "OAuthErrorBody": ("error", "error_description"),
    "KeyList": ("keys",),
    "QueueList": ("queues",),
    "RoleList": ("roles",),
    "ScheduleList": ("schedules",),
    "TenantList": ("tenants",),
    "WebhookList": ("webhooks",),
    "HookList": ("hooks",),
    "HookRequestList": ("requests",),
    "WorkerList": ("workers",),
    "MaintenanceState": ("maintenance",),
    # the answer a provider gets from POST /hooks/{id}, which the library does not send
    "HookReceived": ("task_id", "duplicate"),
}

UNTYPED: Dict[str, FrozenSet[str]] = {
    "Task": frozenset({"payload", "result", "progress"}),
    "TaskInput": frozenset({"payload"}),
    "WorkflowTaskInput": frozenset({"payload"}),
    "DependencyResult": frozenset({"result"}),
    "CompleteItem": frozenset({"result"}),
    "CompleteBody": frozenset({"result"}),
    "HeartbeatBody": frozenset({"progress"}),
    "EventBody": frozenset({"data"}),
    "ScheduleOut": frozenset({"payload"}),
    "ScheduleBody": frozenset({"payload"}),
    "Status": frozenset({"checks"}),
    "AuditEntry": frozenset({"before", "after"}),
}
"""Fields passed through as decoded JSON, on purpose."""


def known_fields(schema: str) -> FrozenSet[str]:
    source = SCHEMAS.get(schema)
    if source is None:
        return frozenset()
    names = wire_fields(source) if isinstance(source, type) else source
    return frozenset(names)
