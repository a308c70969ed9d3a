package rota_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// countingTransport counts the requests sent to each path.
type countingTransport struct {
	mu    sync.Mutex
	paths map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1/tasks/") && strings.Count(path, "/") == 4 {
		path = "/v1/tasks/{id}/" + path[strings.LastIndex(path, "/")+1:]
	}
	c.paths[r.Method+" "+path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[key]
}

func TestS04WorkerRunsHandlers(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	const n = 60
	inputs := make([]rota.TaskInput, n)
	for i := range inputs {
		inputs[i] = rota.TaskInput{Kind: "double", Payload: rawJSON(t, map[string]int{"n": i})}
	}
	tasks, err := c.EnqueueBatch(ctx, q, inputs)
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingTransport{paths: map[string]int{}}
	workerClient := newClient(t, rota.WithHTTPClient(&http.Client{Transport: counting}))
	var running, most int64
	stop := startWorker(t, &rota.Worker{
		Client: workerClient, Queue: q, Concurrency: 8, PollWait: time.Second,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			now := atomic.AddInt64(&running, 1)
			defer atomic.AddInt64(&running, -1)
			for {
				seen := atomic.LoadInt64(&most)
				if now <= seen || atomic.CompareAndSwapInt64(&most, seen, now) {
					break
				}
			}
			var in struct{ N int }
			if err := json.Unmarshal(task.Payload, &in); err != nil {
				return nil, err
			}
			time.Sleep(10 * time.Millisecond)
			return map[string]int{"doubled": 2 * in.N}, nil
		},
	})
	eventually(t, 20*time.Second, "all tasks succeeded", func() bool {
		stats, err := c.GetQueue(ctx, q)
		return err == nil && stats.Counts.Succeeded == n
	})
	stats, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Succeeded != n || stats.Failed != 0 {
		t.Fatalf("stats %+v", stats)
	}
	if most > 8 || most < 2 {
		t.Fatalf("%d handlers ran at once; the bound is 8", most)
	}
	got, err := c.GetTask(ctx, tasks[21].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != rota.StateSucceeded || !jsonEqual(t, got.Result, rawJSON(t, map[string]int{"doubled": 42})) {
		t.Fatalf("task 21: %+v", got)
	}
	// Claimed in batches and completed in batches, never one by one.
	claims := counting.count("POST /v1/queues/" + q + "/claim")
	batches := counting.count("POST /v1/tasks/complete")
	if claims == 0 || claims >= n || batches == 0 || batches >= n || counting.count("POST /v1/tasks/{id}/complete") != 0 {
		t.Fatalf("%d claims and %d completion batches for %d tasks: %v", claims, batches, n, counting.paths)
	}
}

func TestS05FailuresRetriesAndDeadLetters(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	flaky, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	var doomedRuns int64
	stop := startWorker(t, &rota.Worker{
		Client: c, Queue: q, Concurrency: 2, PollWait: 500 * time.Millisecond,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			switch {
			case task.Kind == "doomed":
				atomic.AddInt64(&doomedRuns, 1)
				return nil, rota.Dead(errors.New("the mailbox does not exist"))
			case task.Attempt == 1:
				return nil, rota.RetryIn(errors.New("smtp down"), 50*time.Millisecond)
			}
			return "sent", nil
		},
	})
	eventually(t, 15*time.Second, "the flaky task succeeded on its second attempt", func() bool {
		got, err := c.GetTask(ctx, flaky.ID)
		return err == nil && got.State == rota.StateSucceeded
	})
	stats, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetTask(ctx, flaky.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 2 || len(got.Errors) != 1 || got.Errors[0].Message != "smtp down" {
		t.Fatalf("flaky: attempt %d, errors %+v", got.Attempt, got.Errors)
	}
	dead, err := c.GetTask(ctx, doomed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if dead.State != rota.StateDead || dead.Attempt != 1 || doomedRuns != 1 || dead.Errors[0].Message != "the mailbox does not exist" {
		t.Fatalf("doomed: %+v after %d runs", dead, doomedRuns)
	}
	if stats.Succeeded != 1 || stats.Failed != 2 {
		t.Fatalf("stats %+v", stats)
	}

	letters, err := c.DeadLetters(ctx, q, rota.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters.Tasks) != 1 || letters.Tasks[0].ID != doomed.ID {
		t.Fatalf("dead letters: %+v", letters.Tasks)
	}
	retried, err := c.RetryTask(ctx, doomed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if retried.State != rota.StateReady || retried.Attempt != 0 || len(retried.Errors) != 1 {
		t.Fatalf("retried: %+v", retried)
	}
	// Retrying what is not dead or cancelled is refused.
	if _, err := c.RetryTask(ctx, flaky.ID); rota.ErrorCode(err) != rota.CodeInvalidState {
		t.Fatalf("retrying a succeeded task: %v", err)
	}
}

func TestS06CancelStopsTheHandler(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	task, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "long"})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	stopped := make(chan error, 1)
	var runs int64
	stop := startWorker(t, &rota.Worker{
		Client: c, Queue: q, PollWait: 500 * time.Millisecond, HeartbeatEvery: 100 * time.Millisecond,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			if atomic.AddInt64(&runs, 1) == 1 {
				close(started)
			}
			<-ctx.Done()
			stopped <- ctx.Err()
			return nil, ctx.Err()
		},
	})
	<-started
	if _, err := c.CancelTask(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the handler's ctx ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not stopped within 5 s of the cancel")
	}
	time.Sleep(500 * time.Millisecond) // time for a retry, were there one
	stats, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetTask(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != rota.StateCancelled || got.Attempt != 1 || len(got.Errors) != 0 || runs != 1 {
		t.Fatalf("after the cancel: %+v, %d runs", got, runs)
	}
	if stats.Cancelled != 1 || stats.Failed != 0 || stats.Succeeded != 0 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestS14GracefulShutdown(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	first, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "slow", Priority: rota.Ptr(9)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnqueueBatch(ctx, q, []rota.TaskInput{{Kind: "slow"}, {Kind: "slow"}}); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 3)
	var handlerCtxErr atomic.Value
	stop := startWorker(t, &rota.Worker{
		Client: c, Queue: q, Concurrency: 1, PollWait: 500 * time.Millisecond,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			started <- struct{}{}
			time.Sleep(time.Second)
			handlerCtxErr.Store(errors.New("none"))
			if ctx.Err() != nil {
				handlerCtxErr.Store(ctx.Err())
			}
			return "finished", nil
		},
	})
	<-started
	begun := time.Now()
	stats, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begun); took < 500*time.Millisecond {
		t.Fatalf("Run returned after %s, before the running handler finished", took)
	}
	if e := handlerCtxErr.Load(); e == nil || e.(error).Error() != "none" {
		t.Fatalf("the running handler's ctx ended during shutdown: %v", e)
	}
	if stats.Succeeded != 1 || stats.Interrupted != 0 || len(started) != 0 {
		t.Fatalf("stats %+v, %d more started", stats, len(started))
	}
	got, err := c.GetTask(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != rota.StateSucceeded || !jsonEqual(t, got.Result, rawJSON(t, "finished")) {
		t.Fatalf("the running task: %+v", got)
	}
	queue, err := c.GetQueue(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if queue.Counts.Ready != 2 || queue.Counts.Running != 0 {
		t.Fatalf("after shutdown the queue holds %+v; the other two should wait unclaimed", queue.Counts)
	}
}
