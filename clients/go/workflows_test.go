package rota_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// S16: a workflow a → (b, c) → join across two queues runs in dependency order with the
// library's workers (the join's handler reads b's and c's results in Dependencies) and reads
// back succeeded; a task enqueued with DependsOn waits until its dependency succeeds (or is
// cancelled when it dies), and carries it when claimed; a cycle is a 422 naming it.
func TestS16Workflows(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	q1, q2 := queueName(t), queueName(t)
	wf, err := c.SubmitWorkflow(ctx, []rota.WorkflowTaskInput{
		{Name: "a", Queue: q1, Kind: "a"},
		{Name: "b", Queue: q2, Kind: "b", DependsOn: []string{"a"}},
		{Name: "c", Queue: q2, Kind: "c", DependsOn: []string{"a"}},
		{Name: "join", Queue: q1, Kind: "join", DependsOn: []string{"b", "c"}, OnDependencyFailure: rota.DependencyFailureRun},
	})
	if err != nil {
		t.Fatal(err)
	}
	if wf.ID == "" || wf.State != rota.WorkflowRunning || len(wf.Tasks) != 4 || wf.Counts.Ready != 1 || wf.Counts.Waiting != 3 {
		t.Fatalf("submitted: %+v", wf)
	}
	a, b, cc, join := wf.Task("a"), wf.Task("b"), wf.Task("c"), wf.Task("join")
	if a == nil || b == nil || cc == nil || join == nil || wf.Task("d") != nil {
		t.Fatalf("tasks by name: %+v", wf.Tasks)
	}
	if a.State != rota.StateReady || a.Queue != q1 || len(a.DependsOn) != 0 || a.Workflow == nil || *a.Workflow != wf.ID {
		t.Fatalf("a: %+v", a)
	}
	if join.State != rota.StateWaiting || join.OnDependencyFailure != rota.DependencyFailureRun || b.OnDependencyFailure != "" ||
		strings.Join(join.DependsOn, ",") != b.ID+","+cc.ID && strings.Join(join.DependsOn, ",") != cc.ID+","+b.ID {
		t.Fatalf("join: %+v (b %s, c %s)", join, b.ID, cc.ID)
	}
	if queue, err := c.GetQueue(ctx, q2); err != nil || queue.Counts.Waiting != 2 || queue.Counts.Ready != 0 {
		t.Fatalf("%s's counts: %v %+v", q2, err, queue)
	}

	// One worker per queue; each task records when it started, after what.
	var mu sync.Mutex
	var order []string
	var joinDeps []rota.DependencyResult
	handler := func(ctx context.Context, task *rota.Task) (any, error) {
		mu.Lock()
		order = append(order, task.Kind)
		if task.Kind == "join" {
			joinDeps = task.Dependencies
		}
		mu.Unlock()
		return map[string]string{"ran": task.Kind}, nil
	}
	for _, q := range []string{q1, q2} {
		startWorker(t, &rota.Worker{Client: newClient(t), Queue: q, Concurrency: 4, PollWait: time.Second, Handler: handler})
	}
	done, err := c.WaitTask(ctx, join.ID, 20*time.Second)
	if err != nil || done.State != rota.StateSucceeded {
		t.Fatalf("join: %v %+v", err, done)
	}
	mu.Lock()
	ran := strings.Join(order, ",")
	mu.Unlock()
	if ran != "a,b,c,join" && ran != "a,c,b,join" {
		t.Fatalf("ran in the order %s", ran)
	}
	// The join, claimed, carried how b and c ended and their results, in depends_on order.
	mu.Lock()
	deps := joinDeps
	mu.Unlock()
	if len(deps) != 2 {
		t.Fatalf("join's dependencies: %+v", deps)
	}
	for i, id := range join.DependsOn {
		d, want := deps[i], map[string]string{b.ID: "b", cc.ID: "c"}[id]
		if d.ID != id || d.Queue != q2 || d.Kind != want || d.State != rota.StateSucceeded || d.ResultOmitted ||
			string(d.Result) != `{"ran":"`+want+`"}` {
			t.Fatalf("join's dependency %d: %+v (want %s %s)", i, d, want, id)
		}
	}
	got, err := c.GetWorkflow(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != rota.WorkflowSucceeded || got.Counts != (rota.StateCounts{Succeeded: 4}) || len(got.Tasks) != 4 || !got.CreatedAt.Equal(wf.CreatedAt) {
		t.Fatalf("read back: %+v", got)
	}
	for i, name := range []string{"a", "b", "c", "join"} {
		if got.Tasks[i].Name != name || got.Tasks[i].Task.State != rota.StateSucceeded || string(got.Tasks[i].Task.Result) != `{"ran":"`+name+`"}` {
			t.Fatalf("task %d: %+v", i, got.Tasks[i])
		}
	}

	// A task that depends on another waits; it is ready once that one succeeds.
	q3 := queueName(t)
	first, err := c.Enqueue(ctx, q3, rota.TaskInput{Kind: "first"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Enqueue(ctx, q3, rota.TaskInput{Kind: "second", DependsOn: []string{first.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if second.State != rota.StateWaiting || len(second.DependsOn) != 1 || second.DependsOn[0] != first.ID || second.Workflow != nil {
		t.Fatalf("enqueued with depends_on: %+v", second)
	}
	claimed, err := c.Claim(ctx, q3, rota.ClaimOptions{Worker: "s16", Max: 10})
	if err != nil || len(claimed) != 1 || claimed[0].ID != first.ID || claimed[0].Dependencies != nil {
		t.Fatalf("claim: %v %+v", err, claimed)
	}
	if queue, err := c.GetQueue(ctx, q3); err != nil || queue.Counts.Waiting != 1 || queue.Counts.Running != 1 {
		t.Fatalf("%s's counts: %v %+v", q3, err, queue)
	}
	if _, err := c.Complete(ctx, first.ID, claimed[0].Lease.Token, json.RawMessage(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the waiting task released", func() bool {
		task, err := c.GetTask(ctx, second.ID)
		return err == nil && task.State == rota.StateReady && task.Dependencies == nil
	})
	// Claimed, it carries its dependency's result.
	claimed, err = c.Claim(ctx, q3, rota.ClaimOptions{Worker: "s16", Max: 10})
	if err != nil || len(claimed) != 1 || claimed[0].ID != second.ID || len(claimed[0].Dependencies) != 1 {
		t.Fatalf("claim the released task: %v %+v", err, claimed)
	}
	if d := claimed[0].Dependencies[0]; d.ID != first.ID || d.Queue != q3 || d.Kind != "first" || d.State != rota.StateSucceeded ||
		d.ResultOmitted || string(d.Result) != `{"n":1}` {
		t.Fatalf("the released task's dependency: %+v", d)
	}

	// A dependency that dies cancels a task that waits for it (the default), with the reason as
	// its last error; one that runs anyway is released.
	doomed, err := c.Enqueue(ctx, q3, rota.TaskInput{Kind: "doomed", DelayMs: int64Ptr(60_000)})
	if err != nil {
		t.Fatal(err)
	}
	cancels, err := c.Enqueue(ctx, q3, rota.TaskInput{DependsOn: []string{doomed.ID}})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := c.Enqueue(ctx, q3, rota.TaskInput{DependsOn: []string{doomed.ID}, OnDependencyFailure: rota.DependencyFailureRun})
	if err != nil || runs.OnDependencyFailure != rota.DependencyFailureRun {
		t.Fatalf("run anyway: %v %+v", err, runs)
	}
	if _, err := c.KillTask(ctx, doomed.ID, "s16"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the dependents of a dead task", func() bool {
		x, err1 := c.GetTask(ctx, cancels.ID)
		y, err2 := c.GetTask(ctx, runs.ID)
		return err1 == nil && err2 == nil && x.State == rota.StateCancelled && len(x.Errors) > 0 && y.State == rota.StateReady
	})

	// on_dependency_failure needs depends_on.
	_, err = c.Enqueue(ctx, q3, rota.TaskInput{OnDependencyFailure: rota.DependencyFailureRun})
	if rota.ErrorCode(err) != rota.CodeInvalidField {
		t.Fatalf("on_dependency_failure alone: %v", err)
	}

	// Cancelling a workflow cancels every task of it that is not final.
	q4 := queueName(t)
	toCancel, err := c.SubmitWorkflow(ctx, []rota.WorkflowTaskInput{
		{Name: "x", Queue: q4},
		{Name: "y", Queue: q4, DependsOn: []string{"x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := c.CancelWorkflow(ctx, toCancel.ID)
	if err != nil || cancelled.State != rota.WorkflowCancelled || cancelled.Counts != (rota.StateCounts{Cancelled: 2}) {
		t.Fatalf("cancel: %v %+v", err, cancelled)
	}

	// The list is newest first, paged by NextBefore, without the tasks.
	page, err := c.ListWorkflows(ctx, "", 1)
	if err != nil || len(page.Workflows) != 1 || page.Workflows[0].ID != toCancel.ID || page.Workflows[0].Tasks != nil || page.NextBefore == nil {
		t.Fatalf("first page: %v %+v", err, page)
	}
	page, err = c.ListWorkflows(ctx, *page.NextBefore, 1)
	if err != nil || len(page.Workflows) != 1 || page.Workflows[0].ID != wf.ID || page.Workflows[0].State != rota.WorkflowSucceeded || page.Workflows[0].Counts.Succeeded != 4 {
		t.Fatalf("second page: %v %+v", err, page)
	}

	// A cycle is refused with the server's message, and nothing is stored.
	_, err = c.SubmitWorkflow(ctx, []rota.WorkflowTaskInput{
		{Name: "p", Queue: q4, DependsOn: []string{"r"}},
		{Name: "q", Queue: q4, DependsOn: []string{"p"}},
		{Name: "r", Queue: q4, DependsOn: []string{"q"}},
	})
	var rerr *rota.Error
	if !errors.As(err, &rerr) || rerr.Status != 422 || rerr.Code != rota.CodeInvalidField || !strings.Contains(rerr.Message, "cycle") {
		t.Fatalf("a cycle: %v", err)
	}
	if page, err := c.ListWorkflows(ctx, "", 1); err != nil || page.Workflows[0].ID != toCancel.ID {
		t.Fatalf("after the cycle: %v %+v", err, page)
	}
	if _, err := c.GetWorkflow(ctx, "0192f8a0-2c4e-7000-8000-000000000000"); !rota.IsNotFound(err) {
		t.Fatalf("an unknown workflow: %v", err)
	}
}

func int64Ptr(v int64) *int64 { return &v }
