package rota_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestWorkerTimeoutPanicAndTemporary(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	slow, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "slow", MaxAttempts: rota.Ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	panicky, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "panic", MaxAttempts: rota.Ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	temporary, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "temporary", MaxAttempts: rota.Ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	ctxErrs := make(chan error, 1)
	stop := startWorker(t, &rota.Worker{
		Client: c, Queue: q, Concurrency: 3, PollWait: 500 * time.Millisecond, Timeout: 300 * time.Millisecond,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			switch task.Kind {
			case "slow":
				<-ctx.Done()
				ctxErrs <- ctx.Err()
				return nil, ctx.Err()
			case "panic":
				panic("boom")
			}
			if task.Attempt == 1 && len(task.Errors) == 0 {
				return nil, rota.Temporary(errors.New("the registry is down"))
			}
			return "ok", nil
		},
	})
	final := func(id string) *rota.Task {
		var got *rota.Task
		eventually(t, 10*time.Second, "task "+id+" is final", func() bool {
			got, err = c.GetTask(ctx, id)
			return err == nil && got.State.Final()
		})
		return got
	}
	if got := final(slow.ID); got.State != rota.StateDead || !strings.Contains(got.Errors[0].Message, "timed out") {
		t.Fatalf("timed out: %+v", got)
	}
	if err := <-ctxErrs; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the timed-out handler's ctx ended with %v", err)
	}
	if got := final(panicky.ID); got.State != rota.StateDead || !strings.Contains(got.Errors[0].Message, "panicked: boom") {
		t.Fatalf("panicked: %+v", got)
	}
	// A temporary failure gives its attempt back: with max_attempts 1 it still runs again.
	if got := final(temporary.ID); got.State != rota.StateSucceeded || len(got.Errors) != 1 {
		t.Fatalf("temporary: %+v", got)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerStopsOnARefusedClaim(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	key, err := c.CreateKey(ctx, rota.NewKey{Roles: []string{"worker"}, Queues: []string{q}})
	if err != nil {
		t.Fatal(err)
	}
	w := &rota.Worker{
		Client:  newClient(t, rota.WithToken(key.Token)),
		Queue:   q + "-elsewhere",
		Handler: func(context.Context, *rota.Task) (any, error) { return nil, nil },
	}
	_, err = w.Run(ctx)
	if rota.ErrorCode(err) != rota.CodeForbidden {
		t.Fatalf("Run returned %v", err)
	}
}

func TestS04WorkerKindsAndHeartbeats(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	long, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "long"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "other"})
	if err != nil {
		t.Fatal(err)
	}
	stop := startWorker(t, &rota.Worker{
		Client: c, Queue: q, Kinds: []string{"long"}, PollWait: 500 * time.Millisecond,
		// A 1 s lease, renewed every third of it, outlives a handler of 2.5 s.
		Lease: time.Second,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			select {
			case <-time.After(2500 * time.Millisecond):
				return "done", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	eventually(t, 15*time.Second, "the long task succeeded", func() bool {
		got, err := c.GetTask(ctx, long.ID)
		return err == nil && got.State.Final()
	})
	stats, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetTask(ctx, long.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != rota.StateSucceeded || got.Attempt != 1 || len(got.Errors) != 0 || stats.LeaseLost != 0 {
		t.Fatalf("the long task: %+v, stats %+v", got, stats)
	}
	if got, err := c.GetTask(ctx, other.ID); err != nil || got.State != rota.StateReady {
		t.Fatalf("a task of another kind was claimed: %v %+v", err, got)
	}
}

func TestS14ShutdownHandsBackWhatOutlivesTheGrace(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	task, err := c.Enqueue(ctx, q, rota.TaskInput{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	stop := startWorker(t, &rota.Worker{
		Client: c, Queue: q, PollWait: 500 * time.Millisecond, Grace: 300 * time.Millisecond,
		Handler: func(ctx context.Context, task *rota.Task) (any, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	<-started
	stats, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Interrupted != 1 || stats.Failed != 1 {
		t.Fatalf("stats %+v", stats)
	}
	got, err := c.GetTask(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Failed as temporary with no delay: ready again at once, its attempt given back.
	if got.State != rota.StateReady || got.Attempt != 0 || len(got.Errors) != 1 || !strings.Contains(got.Errors[0].Message, "shut down") {
		t.Fatalf("the interrupted task: %+v", got)
	}
}
