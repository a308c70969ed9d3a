package rota

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Queues lists the queues the credential may read.
func (c *Client) Queues(ctx context.Context) ([]QueueInfo, error) {
	var out struct {
		Queues []QueueInfo `json:"queues"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/queues", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Queues, nil
}

// GetQueue reads one queue's settings, counts and flow.
func (c *Client) GetQueue(ctx context.Context, queue string) (*QueueStats, error) {
	var out QueueStats
	if err := c.call(ctx, http.MethodGet, "/v1/queues/"+esc(queue), nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateQueue changes a queue's settings (creating the queue if needed).
func (c *Client) UpdateQueue(ctx context.Context, queue string, patch QueuePatch) (*QueueInfo, error) {
	return c.queueCall(ctx, http.MethodPatch, queue, "", patch)
}

// PauseQueue stops claims from an existing queue; running tasks finish.
func (c *Client) PauseQueue(ctx context.Context, queue string) (*QueueInfo, error) {
	return c.queueCall(ctx, http.MethodPost, queue, "/pause", nil)
}

// ResumeQueue lets an existing paused queue be claimed again.
func (c *Client) ResumeQueue(ctx context.Context, queue string) (*QueueInfo, error) {
	return c.queueCall(ctx, http.MethodPost, queue, "/resume", nil)
}

func (c *Client) queueCall(ctx context.Context, method, queue, action string, body any) (*QueueInfo, error) {
	var out QueueInfo
	if err := c.call(ctx, method, "/v1/queues/"+esc(queue)+action, nil, body, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// PurgeQueue deletes a queue's tasks in a final state (dead, succeeded or cancelled) now, and
// answers how many.
func (c *Client) PurgeQueue(ctx context.Context, queue string, state TaskState) (int64, error) {
	var out struct {
		Deleted int64 `json:"deleted"`
	}
	q := url.Values{"state": {string(state)}}
	if err := c.call(ctx, http.MethodDelete, "/v1/queues/"+esc(queue)+"/tasks", q, nil, &out, 0); err != nil {
		return 0, err
	}
	return out.Deleted, nil
}

// DeadLetters reads one page of a queue's dead tasks, newest first (RetryTask brings one back).
func (c *Client) DeadLetters(ctx context.Context, queue string, opts ListOptions) (*TaskList, error) {
	opts.State = StateDead
	return c.ListTasks(ctx, queue, opts)
}

// Groups reads one page of a queue's groups, by name, after the group named after ("" first).
func (c *Client) Groups(ctx context.Context, queue, after string, limit int) (*GroupPage, error) {
	q := url.Values{}
	set(q, "after", after)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out GroupPage
	if err := c.call(ctx, http.MethodGet, "/v1/queues/"+esc(queue)+"/groups", q, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetGroup puts one group's own settings (the zero GroupSettings removes them).
func (c *Client) SetGroup(ctx context.Context, queue, group string, settings GroupSettings) (*GroupInfo, error) {
	var out GroupInfo
	path := "/v1/queues/" + esc(queue) + "/groups/" + esc(group)
	if err := c.call(ctx, http.MethodPut, path, nil, settings, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
