package rota_test

import (
	"errors"
	"strings"
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

const (
	testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTracestate  = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// traceOf is a task's trace context as "traceparent|tracestate", "" for a nil one.
func traceOf(task *rota.Task) string {
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	return deref(task.Traceparent) + "|" + deref(task.Tracestate)
}

// S18: trace context: a task enqueued with a W3C traceparent and tracestate carries them
// unchanged through GetTask and Claim (and a workflow's task through its input).
func TestS18TraceContext(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	want := testTraceparent + "|" + testTracestate
	made, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "traced", Traceparent: testTraceparent, Tracestate: testTracestate})
	if err != nil {
		t.Fatal(err)
	}
	if got := traceOf(&made.Task); got != want {
		t.Fatalf("enqueued with %q", got)
	}
	got, err := c.GetTask(ctx, made.ID)
	if err != nil {
		t.Fatal(err)
	}
	if traceOf(got) != want {
		t.Fatalf("got %q", traceOf(got))
	}
	claimed, err := c.Claim(ctx, q, rota.ClaimOptions{Worker: "s18"})
	if err != nil || len(claimed) != 1 || claimed[0].ID != made.ID {
		t.Fatalf("claimed %+v, %v", claimed, err)
	}
	if traceOf(&claimed[0]) != want {
		t.Fatalf("claimed %q", traceOf(&claimed[0]))
	}

	plain, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "untraced"})
	if err != nil || plain.Traceparent != nil || plain.Tracestate != nil {
		t.Fatalf("untraced %+v, %v", plain, err)
	}

	flow, err := c.SubmitWorkflow(ctx, []rota.WorkflowTaskInput{
		{Name: "a", Queue: q, Kind: "traced", Traceparent: testTraceparent, Tracestate: testTracestate},
	})
	if err != nil || len(flow.Tasks) != 1 || traceOf(&flow.Tasks[0].Task) != want {
		t.Fatalf("workflow %+v, %v", flow, err)
	}
}

// S18: a malformed traceparent is a 422 naming it, and nothing is stored.
func TestS18BadTraceparent(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	_, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "traced", Traceparent: "00-not-a-trace-01"})
	var apiErr *rota.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || apiErr.Code != rota.CodeInvalidField || !strings.Contains(apiErr.Message, "traceparent") {
		t.Fatalf("422: %v", err)
	}
	if _, err := c.GetQueue(ctx, q); !rota.IsNotFound(err) {
		t.Fatalf("the queue was made: %v", err)
	}
}
