package rota

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Process is a worker process connected through the Faktory door.
type Process struct {
	WID         string     `json:"wid"`
	Hostname    string     `json:"hostname"`
	PID         int64      `json:"pid"`
	Labels      []string   `json:"labels"`
	Connections int        `json:"connections"`
	ConnectedAt time.Time  `json:"connected_at"`
	LastBeat    *time.Time `json:"last_beat"`
	// Signal is "quiet" or "terminate" once sent.
	Signal *string `json:"signal"`
}

// Processes lists the worker processes connected through the Faktory door.
func (c *Client) Processes(ctx context.Context) ([]Process, error) {
	var out struct {
		Workers []Process `json:"workers"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/workers", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Workers, nil
}

// QuietProcess tells a worker process to fetch no more jobs.
func (c *Client) QuietProcess(ctx context.Context, wid string) (*Process, error) {
	return c.signal(ctx, wid, "quiet")
}

// TerminateProcess tells a worker process to fail back its jobs and exit.
func (c *Client) TerminateProcess(ctx context.Context, wid string) (*Process, error) {
	return c.signal(ctx, wid, "terminate")
}

func (c *Client) signal(ctx context.Context, wid, signal string) (*Process, error) {
	var out Process
	if err := c.call(ctx, http.MethodPost, "/v1/workers/"+esc(wid)+"/"+signal, nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Finding is one problem rota doctor sees, with its cause and fix.
type Finding struct {
	Check    string `json:"check"`
	Severity string `json:"severity"`
	Subject  string `json:"subject"`
	Seen     string `json:"seen"`
	Cause    string `json:"cause"`
	Fix      string `json:"fix"`
}

// DoctorReport is the findings about the tenant or one queue; OK when there is none.
type DoctorReport struct {
	OK        bool      `json:"ok"`
	CheckedAt time.Time `json:"checked_at"`
	Findings  []Finding `json:"findings"`
	Notes     []string  `json:"notes"`
}

// Doctor checks the tenant (or one queue, when queue is not "").
func (c *Client) Doctor(ctx context.Context, queue string) (*DoctorReport, error) {
	q := url.Values{}
	set(q, "queue", queue)
	var out DoctorReport
	if err := c.call(ctx, http.MethodGet, "/v1/doctor", q, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health is the server's health or readiness, each part of the store named.
type Health struct {
	Status      string            `json:"status"`
	Checks      map[string]string `json:"checks"`
	Maintenance *Maintenance      `json:"maintenance"`
}

// Healthz answers while the process serves.
func (c *Client) Healthz(ctx context.Context) (*Health, error) { return c.health(ctx, "/healthz") }

// Readyz answers when the store's writers run and commit; a 503 *Error otherwise.
func (c *Client) Readyz(ctx context.Context) (*Health, error) { return c.health(ctx, "/readyz") }

func (c *Client) health(ctx context.Context, path string) (*Health, error) {
	var out Health
	if err := c.call(ctx, http.MethodGet, path, nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Metrics reads the Prometheus text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	raw, err := c.callRaw(ctx, http.MethodGet, "/metrics", nil, nil, 0)
	return string(raw), err
}

// OpenAPI reads the server's OpenAPI document.
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	return c.callRaw(ctx, http.MethodGet, "/openapi.json", nil, nil, 0)
}
