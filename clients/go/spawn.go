package rota

import (
	"context"
	"net/http"
	"sync/atomic"
)

// Tasks added after submission: members added to an open batch, and tasks a running task
// spawns and waits for (docs/workflows.md, "Open batches" and "Spawning tasks from a running
// task").

// Spawned is what Spawn answers: the spawner as it stands (StateWaiting for the tasks, or
// released already if they all ended) and the tasks it spawned, in the order given.
type Spawned struct {
	Task  Task   `json:"task"`
	Tasks []Task `json:"tasks"`
}

// spawnBody is Spawn's body.
type spawnBody struct {
	Lease               string              `json:"lease"`
	Tasks               []WorkflowTaskInput `json:"tasks"`
	OnDependencyFailure OnDependencyFailure `json:"on_dependency_failure,omitempty"`
}

// Spawn adds tasks (each with its queue and a task's fields, as a batch's members: no Name or
// DependsOn) that the running task id, leased by lease, waits for: it gives up its lease
// (completing it afterwards answers 409 lease_lost) and is released once they all end, then
// claimed again as the same attempt, its claim carrying their results in Dependencies. A
// spawned task that ends dead or cancelled cancels it, unless onFailure is
// DependencyFailureRun ("" is the server's default, cancel). A lease that is not the task's is
// a 409 (IsLeaseLost, IsCancelled) and stores nothing.
//
// Inside a Worker's handler, call it with the handler's ctx (or one made from it) and return
// after it: the run that spawned reports nothing, whatever the handler returns, its heartbeats
// stop, and the worker counts it in WorkerStats.Spawned.
func (c *Client) Spawn(ctx context.Context, id, lease string, tasks []WorkflowTaskInput, onFailure OnDependencyFailure) (*Spawned, error) {
	r := runOf(ctx, id, lease)
	if r != nil {
		// A heartbeat answered lease_lost while the spawn is in flight is the spawn's doing.
		r.spawning.Add(1)
		defer r.spawning.Add(-1)
	}
	var out Spawned
	if err := c.call(ctx, http.MethodPost, "/v1/tasks/"+esc(id)+"/spawn", nil, spawnBody{lease, tasks, onFailure}, &out, 0); err != nil {
		return nil, err
	}
	if r != nil {
		r.handedOff.Store(true)
	}
	return &out, nil
}

// SubmitOpenBatch is SubmitBatch for a batch that stays open: members may be added
// (AddToBatch) until CloseBatch, and the callback waits for the close as well as for every
// member. tasks may be empty. The answer's Open is true.
func (c *Client) SubmitOpenBatch(ctx context.Context, tasks []WorkflowTaskInput, callback WorkflowTaskInput, onlyOnSuccess bool) (*Workflow, error) {
	if tasks == nil {
		tasks = []WorkflowTaskInput{} // the server takes an empty list, not null
	}
	return c.workflowCall(ctx, http.MethodPost, "/v1/batches", batchInput{tasks, callback, onlyOnSuccess, true})
}

// AddToBatch adds members (given as SubmitBatch takes them) to an open batch and answers them
// as stored; its callback waits for them too. A closed batch is a 409 (CodeConflict), a plain
// workflow's id a 422 and an unknown id a 404; none of them stores anything.
func (c *Client) AddToBatch(ctx context.Context, batchID string, tasks []WorkflowTaskInput) ([]Task, error) {
	body := struct {
		Tasks []WorkflowTaskInput `json:"tasks"`
	}{tasks}
	var out struct {
		Tasks []Task `json:"tasks"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/batches/"+esc(batchID)+"/tasks", nil, body, &out, 0); err != nil {
		return nil, err
	}
	return out.Tasks, nil
}

// CloseBatch closes an open batch and answers it (Open false): its callback runs once every
// member is final, at once if they all are. Closing a closed batch changes nothing.
func (c *Client) CloseBatch(ctx context.Context, batchID string) (*Workflow, error) {
	return c.workflowCall(ctx, http.MethodPost, "/v1/batches/"+esc(batchID)+"/close", struct{}{})
}

// run is a Worker's run of one claimed task, carried in its handler's ctx so that Spawn can
// tell the worker the lease was handed off.
type run struct {
	id, lease string
	// spawning counts Spawn calls in flight for this run.
	spawning atomic.Int32
	// handedOff is set once a Spawn succeeded: the lease is given up, nothing is reported.
	handedOff atomic.Bool
}

type runKey struct{}

// runOf is the worker's run in ctx when it is that of task id under lease, else nil.
func runOf(ctx context.Context, id, lease string) *run {
	if r, ok := ctx.Value(runKey{}).(*run); ok && r.id == id && r.lease == lease {
		return r
	}
	return nil
}

// spawned reports whether the run spawned, or is spawning: a lost lease is then expected.
func (r *run) spawned() bool { return r.handedOff.Load() || r.spawning.Load() > 0 }
