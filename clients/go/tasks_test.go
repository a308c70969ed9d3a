package rota_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestS01EnqueueAndGet(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	payload := rawJSON(t, map[string]any{"to": "ada@example.com", "n": 7})
	task, err := c.Enqueue(ctx, q, rota.TaskInput{Kind: "email.send", Payload: payload, Priority: rota.Ptr(5), Tags: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if task.Duplicate || task.State != rota.StateReady || task.Queue != q {
		t.Fatalf("enqueued %+v", task)
	}
	got, err := c.GetTask(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != task.ID || got.Kind != "email.send" || got.Priority != 5 || got.Attempt != 0 || len(got.Tags) != 1 {
		t.Fatalf("got %+v", got)
	}
	if !jsonEqual(t, got.Payload, payload) {
		t.Fatalf("payload %s, want %s", got.Payload, payload)
	}
}

func TestS02BatchAndListPaging(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	inputs := make([]rota.TaskInput, 25)
	for i := range inputs {
		inputs[i] = rota.TaskInput{Kind: "batch", Payload: rawJSON(t, i)}
	}
	tasks, err := c.EnqueueBatch(ctx, q, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 25 {
		t.Fatalf("%d tasks enqueued", len(tasks))
	}
	want := map[string]bool{}
	for _, task := range tasks {
		want[task.ID] = true
	}
	seen, pages := map[string]bool{}, 0
	opts := rota.ListOptions{Limit: 10}
	for {
		page, err := c.ListTasks(ctx, q, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, task := range page.Tasks {
			if seen[task.ID] || !want[task.ID] {
				t.Fatalf("task %s listed twice or not ours", task.ID)
			}
			seen[task.ID] = true
		}
		if page.NextCursor == nil {
			break
		}
		opts.Cursor = *page.NextCursor
	}
	if len(seen) != 25 || pages != 3 {
		t.Fatalf("saw %d tasks in %d pages", len(seen), pages)
	}
}

func TestS03WaitForFinish(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	task, err := c.Enqueue(ctx, q, rota.TaskInput{})
	if err != nil {
		t.Fatal(err)
	}
	// Not final yet: the wait runs out and answers the task as it is.
	early, err := c.WaitTask(ctx, task.ID, 200*time.Millisecond)
	if err != nil || early.State != rota.StateReady {
		t.Fatalf("early wait: %v %+v", err, early)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		claimed, err := c.Claim(ctx, q, rota.ClaimOptions{Worker: "s03", Max: 1})
		if err != nil || len(claimed) != 1 {
			t.Errorf("claim: %v %d", err, len(claimed))
			return
		}
		if _, err := c.Complete(ctx, task.ID, claimed[0].Lease.Token, rawJSON(t, map[string]int{"sum": 3})); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	done, err := c.WaitTask(ctx, task.ID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != rota.StateSucceeded || !jsonEqual(t, done.Result, rawJSON(t, map[string]int{"sum": 3})) {
		t.Fatalf("after the wait: %+v", done)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("the wait took %s: it did not answer when the task finished", waited)
	}
}

func TestS07UniqueKeyKeepAndReplace(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	first, err := c.Enqueue(ctx, q, rota.TaskInput{UniqueKey: "k1", Payload: rawJSON(t, "a")})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := c.Enqueue(ctx, q, rota.TaskInput{UniqueKey: "k1", Payload: rawJSON(t, "b"), OnDuplicate: rota.Keep})
	if err != nil {
		t.Fatal(err)
	}
	if !kept.Duplicate || kept.Replaced || kept.ID != first.ID || !jsonEqual(t, kept.Payload, rawJSON(t, "a")) {
		t.Fatalf("keep: %+v", kept)
	}

	delayed, err := c.Enqueue(ctx, q, rota.TaskInput{UniqueKey: "k2", Payload: rawJSON(t, "old"), DelayMs: rota.Ptr(int64(60_000))})
	if err != nil {
		t.Fatal(err)
	}
	replaced, err := c.Enqueue(ctx, q, rota.TaskInput{UniqueKey: "k2", Payload: rawJSON(t, "new"), OnDuplicate: rota.Replace})
	if err != nil {
		t.Fatal(err)
	}
	if !replaced.Duplicate || !replaced.Replaced || replaced.ID != delayed.ID || !jsonEqual(t, replaced.Payload, rawJSON(t, "new")) {
		t.Fatalf("replace: %+v", replaced)
	}
	if replaced.State != rota.StateReady {
		t.Fatalf("the replacement has no delay, so the task is ready now; it is %s", replaced.State)
	}
	byKey, err := c.ListTasks(ctx, q, rota.ListOptions{UniqueKey: "k2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byKey.Tasks) != 1 || byKey.Tasks[0].ID != delayed.ID {
		t.Fatalf("by key: %+v", byKey.Tasks)
	}
	// Replace without a key is refused.
	_, err = c.Enqueue(ctx, q, rota.TaskInput{OnDuplicate: rota.Replace})
	if rota.ErrorCode(err) != rota.CodeInvalidField {
		t.Fatalf("replace without a key: %v", err)
	}
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}
