package rota

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Enqueue adds one task to queue (creating the queue on its first task).
func (c *Client) Enqueue(ctx context.Context, queue string, task TaskInput) (*EnqueuedTask, error) {
	var out EnqueuedTask
	err := c.call(ctx, http.MethodPost, "/v1/queues/"+esc(queue)+"/tasks", nil, task, &out, 0)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// EnqueueBatch adds tasks to queue in one transaction: all or none. The answer has one entry
// per task, in order.
func (c *Client) EnqueueBatch(ctx context.Context, queue string, tasks []TaskInput) ([]EnqueuedTask, error) {
	var out struct {
		Tasks []EnqueuedTask `json:"tasks"`
	}
	body := struct {
		Tasks []TaskInput `json:"tasks"`
	}{tasks}
	if err := c.call(ctx, http.MethodPost, "/v1/queues/"+esc(queue)+"/tasks", nil, body, &out, 0); err != nil {
		return nil, err
	}
	return out.Tasks, nil
}

// GetTask reads a task.
func (c *Client) GetTask(ctx context.Context, id string) (*Task, error) {
	return c.taskCall(ctx, http.MethodGet, id, "", nil, nil, 0)
}

// WaitTask reads a task once it is final (succeeded, dead or cancelled), or as it is when wait
// runs out: check its State.
func (c *Client) WaitTask(ctx context.Context, id string, wait time.Duration) (*Task, error) {
	q := url.Values{"wait_ms": {strconv.FormatInt(wait.Milliseconds(), 10)}}
	return c.taskCall(ctx, http.MethodGet, id, "", q, nil, wait)
}

// ListTasks reads one page of a queue's tasks, newest first; pass the page's NextCursor as
// opts.Cursor for the next.
func (c *Client) ListTasks(ctx context.Context, queue string, opts ListOptions) (*TaskList, error) {
	q := url.Values{}
	set(q, "state", string(opts.State))
	set(q, "kind", opts.Kind)
	set(q, "unique_key", opts.UniqueKey)
	set(q, "cursor", opts.Cursor)
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out TaskList
	if err := c.call(ctx, http.MethodGet, "/v1/queues/"+esc(queue)+"/tasks", q, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelTask cancels a scheduled, ready or running task (a running task's worker learns of it
// at its next heartbeat).
func (c *Client) CancelTask(ctx context.Context, id string) (*Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/cancel", nil, nil, 0)
}

// RetryTask makes a dead or cancelled task ready again with attempt 0.
func (c *Client) RetryTask(ctx context.Context, id string) (*Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/retry", nil, nil, 0)
}

// RunNow makes a scheduled task (delayed, or waiting out a retry's backoff) ready now.
func (c *Client) RunNow(ctx context.Context, id string) (*Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/run-now", nil, nil, 0)
}

type killBody struct {
	Reason string `json:"reason,omitempty"`
}

// KillTask sends a scheduled or ready task to the dead letters without running it; reason
// ("" for the server's default) is recorded as its last error.
func (c *Client) KillTask(ctx context.Context, id, reason string) (*Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/kill", nil, killBody{reason}, 0)
}

// DeleteTask deletes a task that is not running, and answers it as it was.
func (c *Client) DeleteTask(ctx context.Context, id string) (*Task, error) {
	return c.taskCall(ctx, http.MethodDelete, id, "", nil, nil, 0)
}

func (c *Client) taskCall(ctx context.Context, method, id, action string, q url.Values, body any, wait time.Duration) (*Task, error) {
	var out Task
	if err := c.call(ctx, method, "/v1/tasks/"+esc(id)+action, q, body, &out, wait); err != nil {
		return nil, err
	}
	return &out, nil
}

// Claim leases up to opts.Max ready tasks of queue, waiting up to opts.WaitMs for one. A task
// that waited for others carries them, with their results, in Dependencies.
func (c *Client) Claim(ctx context.Context, queue string, opts ClaimOptions) ([]Task, error) {
	var out struct {
		Tasks []Task `json:"tasks"`
	}
	wait := time.Duration(opts.WaitMs) * time.Millisecond
	if err := c.call(ctx, http.MethodPost, "/v1/queues/"+esc(queue)+"/claim", nil, opts, &out, wait); err != nil {
		return nil, err
	}
	return out.Tasks, nil
}

type heartbeatBody struct {
	Lease    string          `json:"lease"`
	LeaseMs  int64           `json:"lease_ms,omitempty"`
	Progress json.RawMessage `json:"progress,omitempty"`
}

// Heartbeat extends a lease to now + lease (0: the queue's) and stores progress (nil: none).
// A cancelled task answers 409 task_cancelled (IsCancelled), a lost lease 409 lease_lost.
func (c *Client) Heartbeat(ctx context.Context, id, lease string, leaseFor time.Duration, progress json.RawMessage) (*Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/heartbeat", nil, heartbeatBody{lease, leaseFor.Milliseconds(), progress}, 0)
}

type completeBody struct {
	Lease  string          `json:"lease"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Complete marks a running task succeeded with result (nil: none).
func (c *Client) Complete(ctx context.Context, id, lease string, result json.RawMessage) (*Task, error) {
	return c.taskCall(ctx, http.MethodPost, id, "/complete", nil, completeBody{lease, result}, 0)
}

type failBody struct {
	Lease     string `json:"lease"`
	Error     string `json:"error"`
	RetryInMs *int64 `json:"retry_in_ms,omitempty"`
	Dead      bool   `json:"dead,omitempty"`
	Temporary bool   `json:"temporary,omitempty"`
}

// Fail records a failed attempt of a running task (item.ID and item.Lease name it): it runs
// again after its backoff, or goes to the dead letters when its attempts are spent or
// item.Dead is set.
func (c *Client) Fail(ctx context.Context, item FailItem) (*Task, error) {
	body := failBody{item.Lease, item.Error, item.RetryInMs, item.Dead, item.Temporary}
	return c.taskCall(ctx, http.MethodPost, item.ID, "/fail", nil, body, 0)
}

// CompleteBatch completes several tasks in one transaction; one outcome per item, in order.
func (c *Client) CompleteBatch(ctx context.Context, items []CompleteItem) ([]ItemOutcome, error) {
	return c.batch(ctx, "/v1/tasks/complete", items)
}

// FailBatch fails several tasks in one transaction; one outcome per item, in order.
func (c *Client) FailBatch(ctx context.Context, items []FailItem) ([]ItemOutcome, error) {
	return c.batch(ctx, "/v1/tasks/fail", items)
}

func (c *Client) batch(ctx context.Context, path string, items any) ([]ItemOutcome, error) {
	var out struct {
		Items []ItemOutcome `json:"items"`
	}
	body := struct {
		Items any `json:"items"`
	}{items}
	if err := c.call(ctx, http.MethodPost, path, nil, body, &out, 0); err != nil {
		return nil, err
	}
	return out.Items, nil
}

func set(q url.Values, key, value string) {
	if value != "" {
		q.Set(key, value)
	}
}
