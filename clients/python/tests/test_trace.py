"""S18: trace context: a task enqueued with a W3C ``traceparent`` and ``tracestate`` carries
them unchanged through get and claim (and a workflow's task through its input); a malformed
``traceparent`` is a 422 naming it."""

from __future__ import annotations

import pytest

import rota
from rota import NewWorkflowTask

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_s18_trace_context_round_trips_through_get_and_claim(client: rota.Client, queue: str) -> None:
    made = client.enqueue(queue, "traced", traceparent=PARENT, tracestate=STATE)
    assert (made.traceparent, made.tracestate) == (PARENT, STATE)
    got = client.get_task(made.id)
    assert (got.traceparent, got.tracestate) == (PARENT, STATE)
    (claimed,) = client.claim(queue, "w1")
    assert claimed.id == made.id
    assert (claimed.traceparent, claimed.tracestate) == (PARENT, STATE)

    plain = client.enqueue(queue, "untraced")
    assert plain.traceparent is None and plain.tracestate is None

    flow = client.submit_workflow([NewWorkflowTask("a", queue, kind="traced", traceparent=PARENT, tracestate=STATE)])
    (step,) = flow.tasks
    assert (step.task.traceparent, step.task.tracestate) == (PARENT, STATE)


def test_s18_a_bad_traceparent_is_a_422_naming_it(client: rota.Client, queue: str) -> None:
    with pytest.raises(rota.InvalidRequest) as bad:
        client.enqueue(queue, "traced", traceparent="00-not-a-trace-01")
    assert bad.value.status == 422 and bad.value.code == "invalid_field"
    assert "traceparent" in bad.value.message
    assert queue not in [q.name for q in client.queues()]  # nothing stored, not even the queue
