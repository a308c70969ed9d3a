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
	if wf.ID == "" || wf.Kind != rota.KindWorkflow || wf.State != rota.WorkflowRunning || len(wf.Tasks) != 4 || wf.Counts.Ready != 1 || wf.Counts.Waiting != 3 {
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

// S16, batches: a batch of three members (one succeeds, one dies after its one attempt, one is
// cancelled) runs its callback once, and the callback's handler reads the members' ids by
// outcome in Batch; with onlyOnSuccess a dead member cancels the callback. GetBatch reads a
// batch, not a plain workflow; a member with a name is refused.
func TestS16Batches(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	members, callbacks := queueName(t), queueName(t)
	batch, err := c.SubmitBatch(ctx, []rota.WorkflowTaskInput{
		{Queue: members, Kind: "ok"},
		{Queue: members, Kind: "boom", MaxAttempts: intPtr(1)},
		{Queue: members, Kind: "held", DelayMs: int64Ptr(60_000)},
	}, rota.WorkflowTaskInput{Queue: callbacks, Kind: "cb", Tags: []string{"s16"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if batch.ID == "" || batch.Kind != rota.KindBatch || batch.State != rota.WorkflowRunning || len(batch.Tasks) != 4 ||
		batch.Tasks[3].Name != rota.BatchCallback || batch.Counts.Waiting != 1 {
		t.Fatalf("submitted: %+v", batch)
	}
	ok, boom, held, cb := &batch.Tasks[0].Task, &batch.Tasks[1].Task, &batch.Tasks[2].Task, batch.Task(rota.BatchCallback)
	if cb.State != rota.StateWaiting || cb.Queue != callbacks || cb.Kind != "cb" || len(cb.DependsOn) != 3 ||
		cb.Workflow == nil || *cb.Workflow != batch.ID || boom.MaxAttempts != 1 || held.State != rota.StateScheduled {
		t.Fatalf("the callback %+v, members %+v %+v", cb, boom, held)
	}
	got, err := c.GetBatch(ctx, batch.ID)
	if err != nil || got.ID != batch.ID || got.Kind != rota.KindBatch || len(got.Tasks) != 4 {
		t.Fatalf("GetBatch: %v %+v", err, got)
	}
	if got, err := c.GetWorkflow(ctx, batch.ID); err != nil || got.Kind != rota.KindBatch {
		t.Fatalf("GetWorkflow of a batch: %v %+v", err, got)
	}

	if _, err := c.CancelTask(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var runs int
	var summary *rota.BatchSummary
	startWorker(t, &rota.Worker{Client: newClient(t), Queue: members, Concurrency: 2, PollWait: time.Second,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			if task.Batch != nil {
				t.Errorf("a member carries a batch: %+v", task.Batch)
			}
			if task.Kind == "boom" {
				return nil, errors.New("boom")
			}
			return map[string]string{"ran": task.Kind}, nil
		}})
	startWorker(t, &rota.Worker{Client: newClient(t), Queue: callbacks, Concurrency: 2, PollWait: time.Second,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			mu.Lock()
			runs++
			summary = task.Batch
			mu.Unlock()
			return nil, nil
		}})
	done, err := c.WaitTask(ctx, cb.ID, 20*time.Second)
	if err != nil || done.State != rota.StateSucceeded || done.Batch != nil {
		t.Fatalf("the callback: %v %+v", err, done)
	}
	time.Sleep(500 * time.Millisecond) // it runs once: no second claim follows
	mu.Lock()
	n, s := runs, summary
	mu.Unlock()
	if n != 1 || s == nil {
		t.Fatalf("the callback ran %d times, batch %+v", n, s)
	}
	if s.ID != batch.ID || strings.Join(s.Succeeded, ",") != ok.ID || strings.Join(s.Dead, ",") != boom.ID ||
		strings.Join(s.Cancelled, ",") != held.ID {
		t.Fatalf("the callback's batch: %+v (ok %s, boom %s, held %s)", s, ok.ID, boom.ID, held.ID)
	}
	if got, err := c.GetBatch(ctx, batch.ID); err != nil || got.State != rota.WorkflowFailed ||
		got.Counts != (rota.StateCounts{Succeeded: 2, Dead: 1, Cancelled: 1}) {
		t.Fatalf("read back: %v %+v", err, got)
	}

	// onlyOnSuccess: a dead member cancels the callback, which never runs.
	q := queueName(t)
	strict, err := c.SubmitBatch(ctx, []rota.WorkflowTaskInput{
		{Queue: q, Kind: "doomed", DelayMs: int64Ptr(60_000)},
		{Queue: q, Kind: "fine", DelayMs: int64Ptr(60_000)},
	}, rota.WorkflowTaskInput{Queue: q, Kind: "cb"}, true)
	if err != nil || strict.Kind != rota.KindBatch || len(strict.Tasks) != 3 {
		t.Fatalf("only on success: %v %+v", err, strict)
	}
	if _, err := c.KillTask(ctx, strict.Tasks[0].Task.ID, "s16"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelTask(ctx, strict.Tasks[1].Task.ID); err != nil {
		t.Fatal(err)
	}
	strictCb := strict.Task(rota.BatchCallback)
	eventually(t, 10*time.Second, "the callback cancelled", func() bool {
		task, err := c.GetTask(ctx, strictCb.ID)
		return err == nil && task.State == rota.StateCancelled
	})
	if claimed, err := c.Claim(ctx, q, rota.ClaimOptions{Worker: "s16", Max: 10}); err != nil || len(claimed) != 0 {
		t.Fatalf("claim after the cancel: %v %+v", err, claimed)
	}

	// A plain workflow is no batch; a batch's member has no name.
	wf, err := c.SubmitWorkflow(ctx, []rota.WorkflowTaskInput{{Name: "x", Queue: q, DelayMs: int64Ptr(60_000)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetBatch(ctx, wf.ID); !rota.IsNotFound(err) || rota.ErrorCode(err) != rota.CodeBatchNotFound {
		t.Fatalf("GetBatch of a workflow: %v", err)
	}
	_, err = c.SubmitBatch(ctx, []rota.WorkflowTaskInput{{Name: "m", Queue: q}}, rota.WorkflowTaskInput{Queue: q}, false)
	if rota.ErrorCode(err) != rota.CodeInvalidField {
		t.Fatalf("a named member: %v", err)
	}
	// A workflow's task without a name is refused by the server.
	_, err = c.SubmitWorkflow(ctx, []rota.WorkflowTaskInput{{Queue: q}})
	if rota.ErrorCode(err) != rota.CodeInvalidField {
		t.Fatalf("a workflow task without a name: %v", err)
	}
}

func int64Ptr(v int64) *int64 { return &v }
func intPtr(v int) *int       { return &v }
