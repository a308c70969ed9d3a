package rota

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// WorkflowState is where a workflow stands, from its tasks' states.
type WorkflowState string

// The workflow states.
const (
	// WorkflowRunning has a task that is not final yet.
	WorkflowRunning WorkflowState = "running"
	// WorkflowSucceeded has every task succeeded.
	WorkflowSucceeded WorkflowState = "succeeded"
	// WorkflowFailed has every task final and at least one dead.
	WorkflowFailed WorkflowState = "failed"
	// WorkflowCancelled has every task final, none dead, at least one cancelled.
	WorkflowCancelled WorkflowState = "cancelled"
)

// WorkflowTaskInput is one task of a workflow to submit: a task as Enqueue takes it (without a
// unique key), with a name unique in the workflow, its queue, and the names of the tasks of
// the workflow it waits for. A batch's member or callback (SubmitBatch) has a queue and the
// task's fields only: no Name, DependsOn or OnDependencyFailure.
type WorkflowTaskInput struct {
	// Name is required in a workflow, unique in it (what DependsOn refers to); not in a batch.
	Name  string `json:"name,omitempty"`
	Queue string `json:"queue"`
	// DependsOn are names of tasks of this workflow that must succeed first.
	DependsOn []string `json:"depends_on,omitempty"`
	// OnDependencyFailure says what a dependency that ends dead or cancelled does; only with
	// DependsOn.
	OnDependencyFailure OnDependencyFailure `json:"on_dependency_failure,omitempty"`
	Kind                string              `json:"kind,omitempty"`
	// Payload is any value encoding/json marshals (a json.RawMessage is sent as it is).
	Payload     any        `json:"payload,omitempty"`
	Priority    *int       `json:"priority,omitempty"`
	RunAt       *time.Time `json:"run_at,omitempty"`
	DelayMs     *int64     `json:"delay_ms,omitempty"`
	MaxAttempts *int       `json:"max_attempts,omitempty"`
	Tags        []string   `json:"tags,omitempty"`
	CallbackURL string     `json:"callback_url,omitempty"`
	Group       string     `json:"group,omitempty"`
	// Traceparent and Tracestate are the W3C trace context the task continues, as on a
	// TaskInput.
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`
}

// WorkflowKind is what a workflow was submitted as.
type WorkflowKind string

// The workflow kinds.
const (
	// KindWorkflow is a graph of named tasks (SubmitWorkflow).
	KindWorkflow WorkflowKind = "workflow"
	// KindBatch is members and a callback that runs once they are all final (SubmitBatch); the
	// callback is the task named BatchCallback.
	KindBatch WorkflowKind = "batch"
)

// BatchCallback is the name of a batch's callback among its workflow's tasks.
const BatchCallback = "callback"

// BatchSummary is how a batch's members ended, as its callback's claim carries it (Task.Batch).
type BatchSummary struct {
	// ID is the batch's (a workflow's) id.
	ID        string   `json:"id"`
	Succeeded []string `json:"succeeded"`
	Dead      []string `json:"dead"`
	Cancelled []string `json:"cancelled"`
}

// WorkflowTask is a task of a workflow, under the name it was submitted with.
type WorkflowTask struct {
	Name string `json:"name"`
	Task Task   `json:"task"`
}

// Workflow is a workflow as the server shows it.
type Workflow struct {
	ID string `json:"id"`
	// Kind is KindWorkflow or KindBatch.
	Kind      WorkflowKind  `json:"kind"`
	State     WorkflowState `json:"state"`
	CreatedAt time.Time     `json:"created_at"`
	// Counts are its tasks by state (tasks removed by retention are no longer counted).
	Counts StateCounts `json:"counts"`
	// Tasks are its tasks in submission order; a ListWorkflows page leaves them out.
	Tasks []WorkflowTask `json:"tasks"`
	// Open is, for a batch, whether members may still be added (AddToBatch) until CloseBatch;
	// nil for a workflow.
	Open *bool `json:"open,omitempty"`
}

// Task is the workflow's task submitted under name, or nil.
func (w *Workflow) Task(name string) *Task {
	for i := range w.Tasks {
		if w.Tasks[i].Name == name {
			return &w.Tasks[i].Task
		}
	}
	return nil
}

// WorkflowList is one page of workflows, newest first, their tasks counted, not listed.
type WorkflowList struct {
	Workflows []Workflow `json:"workflows"`
	// NextBefore is the before of the next (older) page; nil on the last.
	NextBefore *string `json:"next_before"`
}

// SubmitWorkflow stores a graph of tasks whole or not at all: those with dependencies wait for
// them. An unknown or repeated name or a cycle is a 422 (the message names it), and nothing is
// stored.
func (c *Client) SubmitWorkflow(ctx context.Context, tasks []WorkflowTaskInput) (*Workflow, error) {
	body := struct {
		Tasks []WorkflowTaskInput `json:"tasks"`
	}{tasks}
	return c.workflowCall(ctx, http.MethodPost, "/v1/workflows", body)
}

// GetWorkflow reads a workflow with its tasks.
func (c *Client) GetWorkflow(ctx context.Context, id string) (*Workflow, error) {
	return c.workflowCall(ctx, http.MethodGet, "/v1/workflows/"+esc(id), nil)
}

// CancelWorkflow cancels every task of a workflow that is not final, and answers the workflow.
func (c *Client) CancelWorkflow(ctx context.Context, id string) (*Workflow, error) {
	return c.workflowCall(ctx, http.MethodPost, "/v1/workflows/"+esc(id)+"/cancel", nil)
}

// batchInput is SubmitBatch's body.
type batchInput struct {
	Tasks         []WorkflowTaskInput `json:"tasks"`
	Callback      WorkflowTaskInput   `json:"callback"`
	OnlyOnSuccess bool                `json:"only_on_success"`
	// Open keeps the batch open for AddToBatch until CloseBatch (SubmitOpenBatch).
	Open bool `json:"open,omitempty"`
}

// SubmitBatch stores a batch whole or not at all: the members (tasks, each with a queue and a
// task's fields, no Name or DependsOn) and a callback that runs once every member is final. By
// default it runs whatever they ended as; with onlyOnSuccess a member that ends dead or
// cancelled cancels it. Its claim (so a Worker's handler) reads the outcome in Task.Batch. The
// answer is the batch as a Workflow of Kind KindBatch whose last task is named BatchCallback.
// SubmitOpenBatch submits one that takes members until it is closed.
func (c *Client) SubmitBatch(ctx context.Context, tasks []WorkflowTaskInput, callback WorkflowTaskInput, onlyOnSuccess bool) (*Workflow, error) {
	return c.workflowCall(ctx, http.MethodPost, "/v1/batches", batchInput{tasks, callback, onlyOnSuccess, false})
}

// GetBatch reads a batch with its members and callback; a plain workflow's id is a 404
// (batch_not_found). GetWorkflow, ListWorkflows and CancelWorkflow take batches too.
func (c *Client) GetBatch(ctx context.Context, id string) (*Workflow, error) {
	return c.workflowCall(ctx, http.MethodGet, "/v1/batches/"+esc(id), nil)
}

// ListWorkflows reads one page of the tenant's workflows, newest first, older than the one
// with id before ("" first); pass the page's NextBefore for the next. limit 0 is the server's
// default (100).
func (c *Client) ListWorkflows(ctx context.Context, before string, limit int) (*WorkflowList, error) {
	q := url.Values{}
	set(q, "before", before)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out WorkflowList
	if err := c.call(ctx, http.MethodGet, "/v1/workflows", q, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) workflowCall(ctx context.Context, method, path string, body any) (*Workflow, error) {
	var out Workflow
	if err := c.call(ctx, method, path, nil, body, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
