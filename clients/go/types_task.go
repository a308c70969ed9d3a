package rota

import (
	"encoding/json"
	"time"
)

// TaskState is where a task is in its life (docs/task-states.md).
type TaskState string

// The task states.
const (
	StateScheduled TaskState = "scheduled"
	StateReady     TaskState = "ready"
	StateRunning   TaskState = "running"
	StateSucceeded TaskState = "succeeded"
	StateDead      TaskState = "dead"
	StateCancelled TaskState = "cancelled"
	// StateWaiting waits for the tasks it depends on (DependsOn): ready once they all
	// succeeded, cancelled (or run anyway) when one ends dead or cancelled.
	StateWaiting TaskState = "waiting"
)

// Final reports whether nothing more happens to a task in this state by itself.
func (s TaskState) Final() bool {
	return s == StateSucceeded || s == StateDead || s == StateCancelled
}

// Task is a task as every endpoint shows it.
type Task struct {
	ID          string          `json:"id"`
	Queue       string          `json:"queue"`
	Kind        string          `json:"kind"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int             `json:"priority"`
	State       TaskState       `json:"state"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	RunAt       time.Time       `json:"run_at"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	FinishedAt  *time.Time      `json:"finished_at"`
	// StartedAt is when the latest attempt was claimed; nil before the first claim.
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	Lease       *Lease          `json:"lease"`
	Progress    json.RawMessage `json:"progress"`
	Result      json.RawMessage `json:"result"`
	Errors      []AttemptError  `json:"errors"`
	UniqueKey   *string         `json:"unique_key"`
	Group       *string         `json:"group"`
	Tags        []string        `json:"tags"`
	CallbackURL *string         `json:"callback_url"`
	// DependsOn are the tasks this one waits for; empty when it waits for none.
	DependsOn []string `json:"depends_on"`
	// OnDependencyFailure is "" (cancel, the default) or DependencyFailureRun.
	OnDependencyFailure OnDependencyFailure `json:"on_dependency_failure"`
	// Workflow is the id of the workflow the task was submitted in; nil when none.
	Workflow *string `json:"workflow"`
	// Traceparent is the W3C trace context the task continues (the enqueue's, or its
	// request's traceparent header); nil when it has none.
	Traceparent *string `json:"traceparent,omitempty"`
	// Tracestate is the vendors' part of the trace context, beside Traceparent.
	Tracestate *string `json:"tracestate,omitempty"`
	// Dependencies are, on a claimed task that waited for others (DependsOn), how each of
	// them ended and its result: the first 100 in DependsOn order, results up to 64 KiB in all
	// (docs/workflows.md, "Results"). Only Claim (and so a Worker's handler) fills it; nil
	// elsewhere and for a task that waited for none.
	Dependencies []DependencyResult `json:"dependencies,omitempty"`
	// Batch is, on a claimed batch callback (SubmitBatch), how the batch's members ended. Only
	// Claim (and so a Worker's handler) fills it; nil elsewhere and for any other task.
	Batch *BatchSummary `json:"batch,omitempty"`
}

// DependencyResult is a dependency of a claimed task: how it ended and its result, so a join
// gets its inputs in the claim's round trip.
type DependencyResult struct {
	ID    string    `json:"id"`
	Queue string    `json:"queue"`
	Kind  string    `json:"kind"`
	State TaskState `json:"state"`
	// Result is the dependency's result as stored; nil when it has none or ResultOmitted.
	Result json.RawMessage `json:"result,omitempty"`
	// ResultOmitted says the result is not inline: it would pass the claim's bound on result
	// bytes (64 KiB), or the claimer may not read the dependency's queue. GetTask has it.
	ResultOmitted bool `json:"result_omitted,omitempty"`
}

// Lease is a running task's lease. Token is shown only to a caller that may complete the task.
type Lease struct {
	Worker    string    `json:"worker"`
	Token     string    `json:"token,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AttemptError is one failed attempt's error.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// OnDuplicate says what an enqueue with a unique key does to a live task holding the key.
type OnDuplicate string

// The duplicate policies.
const (
	// Keep leaves the live task as it is and answers it (the default).
	Keep OnDuplicate = "keep"
	// Replace rewrites a live task that still waits to run with this enqueue's fields (debounce).
	Replace OnDuplicate = "replace"
)

// OnDependencyFailure says what a task does when a task it depends on ends dead or cancelled.
type OnDependencyFailure string

// The dependency failure policies.
const (
	// DependencyFailureCancel cancels the task, its last error naming the dependency (the
	// default).
	DependencyFailureCancel OnDependencyFailure = "cancel"
	// DependencyFailureRun counts the dependency as done: the task runs once every dependency
	// is final.
	DependencyFailureRun OnDependencyFailure = "run"
)

// TaskInput is a task to enqueue; every field is optional.
type TaskInput struct {
	Kind string `json:"kind,omitempty"`
	// Payload is any value encoding/json marshals (a json.RawMessage is sent as it is).
	Payload     any         `json:"payload,omitempty"`
	Priority    *int        `json:"priority,omitempty"`
	RunAt       *time.Time  `json:"run_at,omitempty"`
	DelayMs     *int64      `json:"delay_ms,omitempty"`
	MaxAttempts *int        `json:"max_attempts,omitempty"`
	UniqueKey   string      `json:"unique_key,omitempty"`
	OnDuplicate OnDuplicate `json:"on_duplicate,omitempty"`
	Group       string      `json:"group,omitempty"`
	Tags        []string    `json:"tags,omitempty"`
	CallbackURL string      `json:"callback_url,omitempty"`
	// DependsOn are tasks (of the tenant, in any queue) that must succeed before this one
	// runs: it is enqueued waiting (StateWaiting) until they have.
	DependsOn []string `json:"depends_on,omitempty"`
	// OnDependencyFailure says what a dependency that ends dead or cancelled does; only with
	// DependsOn.
	OnDependencyFailure OnDependencyFailure `json:"on_dependency_failure,omitempty"`
	// Traceparent is a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, lower case) the task
	// continues; "" takes the request's traceparent header, if any.
	Traceparent string `json:"traceparent,omitempty"`
	// Tracestate is the W3C tracestate beside it (at most 512 bytes); needs Traceparent.
	Tracestate string `json:"tracestate,omitempty"`
}

// EnqueuedTask is a task as enqueue answers it.
type EnqueuedTask struct {
	Task
	// Duplicate is true when the unique key matched a live task, which is returned instead.
	Duplicate bool `json:"duplicate"`
	// Replaced is true when that live task was waiting and took this enqueue's fields.
	Replaced bool `json:"replaced"`
}

// TaskList is one page of a queue's tasks, newest first.
type TaskList struct {
	Tasks []Task `json:"tasks"`
	// NextCursor fetches the next (older) page; "" on the last page.
	NextCursor *string `json:"next_cursor"`
}

// ClaimOptions is a claim's request.
type ClaimOptions struct {
	Worker string `json:"worker"`
	// Kinds limits the claim to these task kinds; empty is any.
	Kinds []string `json:"kinds,omitempty"`
	// Max is the most tasks to lease (default 1).
	Max int `json:"max,omitempty"`
	// WaitMs long-polls this long for a task when none is ready.
	WaitMs  int64 `json:"wait_ms,omitempty"`
	LeaseMs int64 `json:"lease_ms,omitempty"`
}

// CompleteItem is one task of a batch completion.
type CompleteItem struct {
	ID     string          `json:"id"`
	Lease  string          `json:"lease"`
	Result json.RawMessage `json:"result,omitempty"`
}

// FailItem is one task of a batch failure; the fields of Fail.
type FailItem struct {
	ID        string `json:"id"`
	Lease     string `json:"lease"`
	Error     string `json:"error"`
	RetryInMs *int64 `json:"retry_in_ms,omitempty"`
	Dead      bool   `json:"dead,omitempty"`
	Temporary bool   `json:"temporary,omitempty"`
}

// ItemOutcome is the answer for one item of a batch completion or failure.
type ItemOutcome struct {
	ID    string       `json:"id"`
	OK    bool         `json:"ok"`
	State TaskState    `json:"state,omitempty"`
	Error *ErrorDetail `json:"error,omitempty"`
}

// ListOptions filters and pages a queue's tasks.
type ListOptions struct {
	State     TaskState
	Kind      string
	UniqueKey string
	Limit     int
	Cursor    string
}
