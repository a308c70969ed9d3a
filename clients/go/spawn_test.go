package rota_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// S17: a handler run by the library's worker spawns three tasks in another queue and returns:
// that run reports nothing (its result is not stored, it is no lost lease, and heartbeats after
// the spawn do not cancel its ctx), and the task runs again with their three results in
// Dependencies; a spawn with a wrong lease is a 409 that stores nothing.
func TestS17Spawn(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	parents, children := queueName(t), queueName(t)

	type firstRun struct {
		spawned *rota.Spawned
		err     error
		ctxErr  error
	}
	var (
		mu    sync.Mutex
		runs  int
		first *firstRun
		deps  []rota.DependencyResult
	)
	stopParents := startWorker(t, &rota.Worker{Client: newClient(t), Queue: parents, PollWait: time.Second,
		HeartbeatEvery: 20 * time.Millisecond,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			mu.Lock()
			runs++
			mu.Unlock()
			if len(task.Dependencies) == 0 {
				var tasks []rota.WorkflowTaskInput
				for i := 1; i <= 3; i++ {
					tasks = append(tasks, rota.WorkflowTaskInput{Queue: children, Kind: "page", Payload: map[string]int{"n": i}})
				}
				out, err := c.Spawn(ctx, task.ID, task.Lease.Token, tasks, "")
				// Heartbeats come due meanwhile; the lease is given up, the ctx lives on.
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				first = &firstRun{out, err, ctx.Err()}
				mu.Unlock()
				return map[string]string{"not": "stored"}, nil
			}
			mu.Lock()
			deps = task.Dependencies
			mu.Unlock()
			sum := 0
			for _, d := range task.Dependencies {
				var r struct{ N int }
				if err := json.Unmarshal(d.Result, &r); err != nil {
					return nil, err
				}
				sum += r.N
			}
			return map[string]int{"sum": sum}, nil
		}})
	startWorker(t, &rota.Worker{Client: newClient(t), Queue: children, Concurrency: 3, PollWait: time.Second,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			return json.RawMessage(task.Payload), nil
		}})

	parent, err := c.Enqueue(ctx, parents, rota.TaskInput{Kind: "listing"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitTask(ctx, parent.ID, 20*time.Second)
	if err != nil || done.State != rota.StateSucceeded || string(done.Result) != `{"sum":6}` {
		t.Fatalf("the spawner: %v %+v", err, done)
	}
	mu.Lock()
	n, f, d := runs, first, deps
	mu.Unlock()
	if n != 2 || f == nil || f.err != nil || f.ctxErr != nil {
		t.Fatalf("%d runs, first %+v", n, f)
	}
	s := f.spawned
	// The spawner waits, or was released already when the other worker ran the three first.
	if s.Task.ID != parent.ID || s.Task.State != rota.StateWaiting && s.Task.State != rota.StateReady || len(s.Tasks) != 3 || len(s.Task.DependsOn) != 3 {
		t.Fatalf("spawned: %+v", s)
	}
	var ids []string
	for i, child := range s.Tasks {
		if child.Queue != children || child.Kind != "page" || string(child.Payload) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Fatalf("spawned task %d: %+v", i, child)
		}
		ids = append(ids, child.ID)
	}
	dependsOn := append([]string(nil), s.Task.DependsOn...)
	sort.Strings(dependsOn)
	sort.Strings(ids)
	if strings.Join(dependsOn, ",") != strings.Join(ids, ",") {
		t.Fatalf("the spawner waits for %v, spawned %v", s.Task.DependsOn, ids)
	}
	// The second run's claim carried the three results.
	if len(d) != 3 {
		t.Fatalf("the second run's dependencies: %+v", d)
	}
	for _, dep := range d {
		if dep.Queue != children || dep.State != rota.StateSucceeded || dep.ResultOmitted || !strings.HasPrefix(string(dep.Result), `{"n":`) {
			t.Fatalf("a dependency: %+v", dep)
		}
	}
	// The first run reported nothing: one spawn, one success, no lost lease, no failure.
	stats, err := stopParents()
	if err != nil || stats != (rota.WorkerStats{Succeeded: 1, Spawned: 1}) {
		t.Fatalf("the spawner's worker: %v %+v", err, stats)
	}

	// A wrong lease is a 409 and stores nothing; the right one (outside a worker) gives the
	// lease up, so completing under it is a lost lease.
	q, target := queueName(t), queueName(t)
	if _, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "x"}); err != nil {
		t.Fatal(err)
	}
	claimed, err := c.Claim(ctx, q, rota.ClaimOptions{Worker: "s17"})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %+v", err, claimed)
	}
	task := claimed[0]
	add := []rota.WorkflowTaskInput{{Queue: target, Kind: "y"}}
	_, err = c.Spawn(ctx, task.ID, "not-the-lease", add, rota.DependencyFailureRun)
	var rerr *rota.Error
	if !errors.As(err, &rerr) || rerr.Status != 409 || !rota.IsLeaseLost(err) {
		t.Fatalf("a wrong lease: %v", err)
	}
	// The target queue was never created (a queue is made by its first task), or is empty.
	if list, err := c.ListTasks(ctx, target, rota.ListOptions{}); !rota.IsNotFound(err) && (err != nil || len(list.Tasks) != 0) {
		t.Fatalf("after the wrong lease, %s holds: %v %+v", target, err, list)
	}
	if got, err := c.GetTask(ctx, task.ID); err != nil || got.State != rota.StateRunning || len(got.DependsOn) != 0 {
		t.Fatalf("after the wrong lease: %v %+v", err, got)
	}
	s, err = c.Spawn(ctx, task.ID, task.Lease.Token, add, rota.DependencyFailureRun)
	if err != nil || s.Task.State != rota.StateWaiting || s.Task.OnDependencyFailure != rota.DependencyFailureRun ||
		len(s.Tasks) != 1 || s.Tasks[0].Queue != target {
		t.Fatalf("spawn: %v %+v", err, s)
	}
	if _, err := c.Complete(ctx, task.ID, task.Lease.Token, nil); !rota.IsLeaseLost(err) {
		t.Fatalf("complete after the spawn: %v", err)
	}
}

// S17, open batches: an open batch with no members takes a member, is closed (Open false), runs
// its callback once the member ends, and refuses another member with a 409.
func TestS17OpenBatch(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	members, callbacks := queueName(t), queueName(t)
	batch, err := c.SubmitOpenBatch(ctx, nil, rota.WorkflowTaskInput{Queue: callbacks, Kind: "cb"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if batch.Kind != rota.KindBatch || batch.Open == nil || !*batch.Open || len(batch.Tasks) != 1 || batch.Tasks[0].Name != rota.BatchCallback {
		t.Fatalf("submitted: %+v", batch)
	}
	cb := batch.Task(rota.BatchCallback)
	added, err := c.AddToBatch(ctx, batch.ID, []rota.WorkflowTaskInput{{Queue: members, Kind: "m", Payload: map[string]int{"n": 1}}})
	if err != nil || len(added) != 1 || added[0].Queue != members || added[0].Kind != "m" || added[0].Workflow == nil || *added[0].Workflow != batch.ID {
		t.Fatalf("add: %v %+v", err, added)
	}
	closed, err := c.CloseBatch(ctx, batch.ID)
	if err != nil || closed.ID != batch.ID || closed.Open == nil || *closed.Open || len(closed.Tasks) != 2 {
		t.Fatalf("close: %v %+v", err, closed)
	}
	if again, err := c.CloseBatch(ctx, batch.ID); err != nil || again.Open == nil || *again.Open {
		t.Fatalf("close again: %v %+v", err, again)
	}
	if got, err := c.GetTask(ctx, cb.ID); err != nil || got.State != rota.StateWaiting {
		t.Fatalf("the callback before the member ends: %v %+v", err, got)
	}

	var mu sync.Mutex
	var runs int
	var summary *rota.BatchSummary
	startWorker(t, &rota.Worker{Client: newClient(t), Queue: members, PollWait: time.Second,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) { return nil, nil }})
	startWorker(t, &rota.Worker{Client: newClient(t), Queue: callbacks, PollWait: time.Second,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			mu.Lock()
			runs++
			summary = task.Batch
			mu.Unlock()
			return nil, nil
		}})
	done, err := c.WaitTask(ctx, cb.ID, 20*time.Second)
	if err != nil || done.State != rota.StateSucceeded {
		t.Fatalf("the callback: %v %+v", err, done)
	}
	time.Sleep(300 * time.Millisecond) // it runs once
	mu.Lock()
	n, s := runs, summary
	mu.Unlock()
	if n != 1 || s == nil || s.ID != batch.ID || strings.Join(s.Succeeded, ",") != added[0].ID {
		t.Fatalf("the callback ran %d times, batch %+v", n, s)
	}
	got, err := c.GetBatch(ctx, batch.ID)
	if err != nil || got.State != rota.WorkflowSucceeded || got.Open == nil || *got.Open || got.Counts != (rota.StateCounts{Succeeded: 2}) {
		t.Fatalf("read back: %v %+v", err, got)
	}

	// A closed batch takes no more members; a workflow is no batch; an unknown id is a 404.
	more := []rota.WorkflowTaskInput{{Queue: members}}
	_, err = c.AddToBatch(ctx, batch.ID, more)
	var rerr *rota.Error
	if !errors.As(err, &rerr) || rerr.Status != 409 || rerr.Code != rota.CodeConflict {
		t.Fatalf("add to a closed batch: %v", err)
	}
	if got, err := c.GetBatch(ctx, batch.ID); err != nil || len(got.Tasks) != 2 {
		t.Fatalf("after the refused add: %v %+v", err, got)
	}
	wf, err := c.SubmitWorkflow(ctx, []rota.WorkflowTaskInput{{Name: "x", Queue: members, DelayMs: int64Ptr(60_000)}})
	if err != nil || wf.Open != nil {
		t.Fatalf("a workflow: %v %+v", err, wf)
	}
	if _, err := c.AddToBatch(ctx, wf.ID, more); statusOf(err) != 422 {
		t.Fatalf("add to a workflow: %v", err)
	}
	if _, err := c.AddToBatch(ctx, "0192f8a0-2c4e-7000-8000-000000000000", more); !rota.IsNotFound(err) || rota.ErrorCode(err) != rota.CodeWorkflowNotFound {
		t.Fatalf("add to an unknown batch: %v", err)
	}

	// The batch's end is logged once as workflow.succeeded, naming it.
	eventually(t, 15*time.Second, "the batch's workflow.succeeded event", func() bool {
		page, err := c.Events(ctx, rota.EventOptions{Types: []string{"workflow.*"}, Queues: []string{callbacks}})
		if err != nil || len(page.Events) == 0 {
			return false
		}
		var data struct{ Workflow, State string }
		e := page.Events[0]
		return len(page.Events) == 1 && e.Type == "workflow.succeeded" && json.Unmarshal(e.Data, &data) == nil &&
			data.Workflow == batch.ID && data.State == string(rota.WorkflowSucceeded)
	})
}

// slowSpawnTransport holds back the answer to each spawn for a while, as a slow network would:
// the spawn has happened, so heartbeats meanwhile answer 409 lease_lost.
type slowSpawnTransport struct{ delay time.Duration }

func (s slowSpawnTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && strings.HasSuffix(r.URL.Path, "/spawn") {
		time.Sleep(s.delay)
	}
	return resp, err
}

// S17, the worker: heartbeats answered lease_lost while a spawn's answer is on its way neither
// cancel the handler's ctx nor count as a lost lease; a handler's error after it spawned is not
// reported.
func TestS17HeartbeatsDuringASpawn(t *testing.T) {
	c, ctx := newClient(t), testContext(t)
	q, children := queueName(t), queueName(t)
	slow := newClient(t, rota.WithHTTPClient(&http.Client{Transport: slowSpawnTransport{300 * time.Millisecond}}))
	ctxErrs := make(chan error, 2)
	stop := startWorker(t, &rota.Worker{Client: slow, Queue: q, PollWait: time.Second, HeartbeatEvery: 20 * time.Millisecond,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			if len(task.Dependencies) > 0 {
				return "merged", nil
			}
			_, err := slow.Spawn(ctx, task.ID, task.Lease.Token, []rota.WorkflowTaskInput{{Queue: children, Kind: "c"}}, "")
			if err != nil {
				return nil, err
			}
			time.Sleep(100 * time.Millisecond)
			ctxErrs <- ctx.Err()
			return nil, errors.New("not reported")
		}})
	task, err := c.Enqueue(ctx, q, rota.TaskInput{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ctxErrs:
		if err != nil {
			t.Fatalf("the handler's ctx after the spawn: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the handler did not spawn")
	}
	child, err := c.Claim(ctx, children, rota.ClaimOptions{Worker: "s17"})
	if err != nil || len(child) != 1 {
		t.Fatalf("claim the spawned task: %v %+v", err, child)
	}
	if _, err := c.Complete(ctx, child[0].ID, child[0].Lease.Token, nil); err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitTask(ctx, task.ID, 20*time.Second)
	if err != nil || done.State != rota.StateSucceeded || string(done.Result) != `"merged"` || len(done.Errors) != 0 {
		t.Fatalf("the spawner: %v %+v", err, done)
	}
	if stats, err := stop(); err != nil || stats != (rota.WorkerStats{Succeeded: 1, Spawned: 1}) {
		t.Fatalf("the worker: %v %+v", err, stats)
	}
}

func statusOf(err error) int {
	var e *rota.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
