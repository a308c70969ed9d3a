package rota

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Schedule is a schedule's definition (PUT): exactly one of Cron and EveryMs.
type Schedule struct {
	Queue string `json:"queue"`
	Kind  string `json:"kind,omitempty"`
	// Payload is any value encoding/json marshals.
	Payload     any    `json:"payload,omitempty"`
	Priority    *int   `json:"priority,omitempty"`
	MaxAttempts *int   `json:"max_attempts,omitempty"`
	Group       string `json:"group,omitempty"`
	Cron        string `json:"cron,omitempty"`
	EveryMs     int64  `json:"every_ms,omitempty"`
	Timezone    string `json:"timezone,omitempty"`
	// Overlap is "allow" (default) or "skip".
	Overlap string `json:"overlap,omitempty"`
	// CatchUp is "none", "latest" (default) or "all".
	CatchUp  string `json:"catch_up,omitempty"`
	JitterMs int64  `json:"jitter_ms,omitempty"`
	Paused   *bool  `json:"paused,omitempty"`
}

// ScheduleInfo is a schedule as the server shows it, with its latest runs.
type ScheduleInfo struct {
	Name        string          `json:"name"`
	Queue       string          `json:"queue"`
	Kind        string          `json:"kind"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int             `json:"priority"`
	MaxAttempts *int            `json:"max_attempts"`
	Cron        *string         `json:"cron"`
	EveryMs     *int64          `json:"every_ms"`
	Timezone    string          `json:"timezone"`
	Overlap     string          `json:"overlap"`
	CatchUp     string          `json:"catch_up"`
	JitterMs    int64           `json:"jitter_ms"`
	Paused      bool            `json:"paused"`
	Group       string          `json:"group,omitempty"` // the flow-control group of its tasks
	NextRunAt   *time.Time      `json:"next_run_at"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Runs        []ScheduleRun   `json:"runs"`
}

// ScheduleRun is one tick of a schedule: the task it enqueued and that task's outcome now, or
// why it enqueued nothing.
type ScheduleRun struct {
	Tick    time.Time  `json:"tick"`
	FiredAt time.Time  `json:"fired_at"`
	TaskID  *string    `json:"task_id"`
	Outcome *TaskState `json:"outcome"`
	Skipped *string    `json:"skipped"`
	Trigger *string    `json:"trigger"`
}

// PutSchedule creates or replaces a schedule.
func (c *Client) PutSchedule(ctx context.Context, name string, s Schedule) (*ScheduleInfo, error) {
	return c.scheduleCall(ctx, http.MethodPut, name, "", s)
}

// GetSchedule reads a schedule with its latest runs.
func (c *Client) GetSchedule(ctx context.Context, name string) (*ScheduleInfo, error) {
	return c.scheduleCall(ctx, http.MethodGet, name, "", nil)
}

// Schedules lists the tenant's schedules.
func (c *Client) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	var out struct {
		Schedules []ScheduleInfo `json:"schedules"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/schedules", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return out.Schedules, nil
}

// DeleteSchedule deletes a schedule.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/schedules/"+esc(name), nil, nil, nil, 0)
}

// TriggerSchedule enqueues the schedule's task now; its ticks go on as before.
func (c *Client) TriggerSchedule(ctx context.Context, name string) (*ScheduleInfo, error) {
	return c.scheduleCall(ctx, http.MethodPost, name, "/trigger", nil)
}

// PauseSchedule stops a schedule firing.
func (c *Client) PauseSchedule(ctx context.Context, name string) (*ScheduleInfo, error) {
	return c.scheduleCall(ctx, http.MethodPost, name, "/pause", nil)
}

// ResumeSchedule starts a paused schedule again from its next tick after now.
func (c *Client) ResumeSchedule(ctx context.Context, name string) (*ScheduleInfo, error) {
	return c.scheduleCall(ctx, http.MethodPost, name, "/resume", nil)
}

func (c *Client) scheduleCall(ctx context.Context, method, name, action string, body any) (*ScheduleInfo, error) {
	var out ScheduleInfo
	if err := c.call(ctx, method, "/v1/schedules/"+esc(name)+action, nil, body, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
