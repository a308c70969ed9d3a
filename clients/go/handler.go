package rota

import (
	"context"
	"errors"
	"time"
)

// Handler runs one task. A nil error completes the task with result (marshalled to JSON; nil
// stores none, a json.RawMessage is stored as is); an error fails the attempt, and the task
// runs again after its backoff or goes to the dead letters (see Dead, Temporary, RetryIn). A
// panic fails the attempt too. ctx is cancelled when the task is cancelled, its lease is lost,
// its timeout passes or the worker's grace period after shutdown ends: return soon after. A
// handler that spawned tasks (Client.Spawn with ctx) has handed its lease off: what it returns
// then is not reported, and the task runs again once the spawned tasks end.
type Handler func(ctx context.Context, task *Task) (result any, err error)

// HandlerFunc adapts a handler that stores no result.
func HandlerFunc(fn func(ctx context.Context, task *Task) error) Handler {
	return func(ctx context.Context, task *Task) (any, error) { return nil, fn(ctx, task) }
}

// FailError is a handler's error that says how the failed attempt is treated.
type FailError struct {
	Err error
	// Dead sends the task straight to the dead letters.
	Dead bool
	// Temporary records the error but gives the attempt back (a dependency was down).
	Temporary bool
	// RetryIn, when positive, replaces the queue's backoff for the next attempt.
	RetryIn time.Duration
}

func (e *FailError) Error() string { return e.Err.Error() }

// Unwrap returns the handler's error.
func (e *FailError) Unwrap() error { return e.Err }

// Dead marks err so the task goes straight to the dead letters, without retries.
func Dead(err error) error { return &FailError{Err: err, Dead: true} }

// Temporary marks err as temporary: recorded, but the attempt does not count toward the task's
// max_attempts.
func Temporary(err error) error { return &FailError{Err: err, Temporary: true} }

// RetryIn marks err so the task runs again after d instead of the queue's backoff.
func RetryIn(err error, d time.Duration) error { return &FailError{Err: err, RetryIn: d} }

// failItem is how a handler's error is reported.
func failItem(task *Task, lease string, err error) FailItem {
	item := FailItem{ID: task.ID, Lease: lease, Error: err.Error()}
	var fe *FailError
	if errors.As(err, &fe) {
		item.Dead, item.Temporary = fe.Dead, fe.Temporary
		if fe.RetryIn > 0 {
			ms := fe.RetryIn.Milliseconds()
			item.RetryInMs = &ms
		}
	}
	return item
}
