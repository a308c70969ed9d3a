package rota

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Event is one entry of the event log: a task transition, a schedule's tick, a delivery's end,
// a workflow's (or batch's) end once its tasks all ended (workflow.succeeded,
// workflow.failed, workflow.cancelled: Data has the workflow's id as "workflow" and its
// "state"), or an inbound webhook's request (hook.received, hook.rejected: Data has "hook_id",
// the provider's "delivery" when it sent one and, rejected, the "reason").
type Event struct {
	// Cursor only grows; resume after the last one seen.
	Cursor  int64     `json:"cursor"`
	Type    string    `json:"type"`
	At      time.Time `json:"at"`
	Queue   string    `json:"queue"`
	Kind    string    `json:"kind"`
	TaskID  *string   `json:"task_id"`
	Attempt int       `json:"attempt"`
	// Data is what changed, as the type has it (state, worker, error, ...).
	Data json.RawMessage `json:"data"`
}

// EventList is one page of events, oldest first.
type EventList struct {
	Events []Event `json:"events"`
	// NextCursor is the After of the next page.
	NextCursor int64 `json:"next_cursor"`
}

// EventOptions says which events to read.
type EventOptions struct {
	// After is the cursor to read after; 0 reads from the oldest retained.
	After int64
	// Types are event types or patterns (task.dead, task.*); empty is every type.
	Types []string
	// Queues are queue names or patterns; empty is every queue.
	Queues []string
	// Limit is the page size (Events only).
	Limit int
	// Wait long-polls this long when there is no event yet (Events only).
	Wait time.Duration
	// Idle is how long Follow waits for anything, an event or the server's keep-alive (every
	// 15 s by default), before it takes the connection for dead and reconnects (default 45 s).
	Idle time.Duration
}

func (o EventOptions) query() url.Values {
	q := url.Values{}
	if o.After > 0 {
		q.Set("after", strconv.FormatInt(o.After, 10))
	}
	set(q, "types", strings.Join(o.Types, ","))
	set(q, "queue", strings.Join(o.Queues, ","))
	return q
}

// Events reads one page of the tenant's event log.
func (c *Client) Events(ctx context.Context, opts EventOptions) (*EventList, error) {
	q := opts.query()
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Wait > 0 {
		q.Set("wait_ms", strconv.FormatInt(opts.Wait.Milliseconds(), 10))
	}
	var out EventList
	if err := c.call(ctx, http.MethodGet, "/v1/events", q, nil, &out, opts.Wait); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ticket is a one-minute ticket a browser's EventSource opens the stream with.
type Ticket struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EventTicket issues a ticket for the event stream.
func (c *Client) EventTicket(ctx context.Context) (*Ticket, error) {
	var out Ticket
	if err := c.call(ctx, http.MethodPost, "/v1/events/tickets", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
