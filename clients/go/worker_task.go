package rota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// outcome is how one task's run ended.
type outcome int

const (
	done        outcome = iota // the handler returned
	timedOut                   // past the worker's Timeout
	leaseLost                  // the heartbeat says the lease is gone
	cancelled                  // the heartbeat says the task was cancelled
	interrupted                // the grace period after shutdown ended
	handedOff                  // the handler spawned tasks: the lease was given up (Spawn)
)

type handlerResult struct {
	result any
	err    error
}

// runTask runs the handler for one claimed task, heartbeating its lease until it returns, and
// hands the outcome to the reporter. It returns once the handler has returned, so the task's
// slot stays taken while a handler that was told to stop is still winding down.
func (s *settings) runTask(task *Task, reports chan<- report, stats *counters, stop <-chan struct{}) {
	if task.Lease == nil || task.Lease.Token == "" {
		return // claimed by a credential that may not complete it: nothing to do
	}
	lease := task.Lease.Token
	// The handler's ctx ends only by its Timeout or by cancel below: not with the worker's
	// ctx, so that running handlers finish after shutdown begins. It carries the run, for
	// Spawn to mark it handed off.
	r := &run{id: task.ID, lease: lease}
	base := context.WithValue(context.Background(), runKey{}, r)
	ctx, cancel := context.WithCancel(base)
	if s.Timeout > 0 {
		ctx, cancel = context.WithTimeout(base, s.Timeout)
	}
	defer cancel()
	finished := make(chan handlerResult, 1)
	go func() { finished <- callHandler(ctx, s.Handler, task) }()

	ticker := time.NewTicker(s.heartbeat)
	defer ticker.Stop()

	var (
		end      outcome
		res      handlerResult
		returned bool
	)
loop:
	for {
		select {
		case res = <-finished:
			end, returned = done, true
			break loop
		case <-ticker.C:
			if r.handedOff.Load() {
				continue // the handler spawned: the lease is given up, nothing to renew
			}
			if end = s.heartbeatTask(task.ID, lease); end == leaseLost && r.spawned() {
				end = done // the spawn in flight gave the lease up
				continue
			}
			if end != done {
				break loop
			}
		case <-ctx.Done():
			end = timedOut
			break loop
		case <-stop:
			end = interrupted
			break loop
		}
	}
	if end != done {
		cancel()
	}
	if r.handedOff.Load() && (end == done || end == timedOut || end == interrupted) {
		// Once spawned, the task is no longer this run's to complete or fail.
		if end == done && res.err != nil {
			s.Logger.Printf("rota: task %s spawned tasks; its handler's error is not reported: %v", task.ID, res.err)
		}
		end = handedOff
	}
	switch end {
	case done:
		reports <- resultReport(task, lease, res)
	case handedOff:
		stats.spawned.Add(1)
	case timedOut:
		reports <- report{fail: &FailItem{ID: task.ID, Lease: lease, Error: fmt.Sprintf("handler timed out after %s", s.Timeout)}}
	case interrupted:
		stats.interrupted.Add(1)
		zero := int64(0)
		// Not the task's fault: it runs again at once, and the attempt is given back.
		reports <- report{fail: &FailItem{ID: task.ID, Lease: lease, Error: "worker shut down before the task finished", RetryInMs: &zero, Temporary: true}}
	case leaseLost:
		stats.leaseLost.Add(1)
	case cancelled:
		s.Logger.Printf("rota: task %s was cancelled; its handler was stopped", task.ID)
		stats.cancelled.Add(1)
	}
	if !returned {
		<-finished
	}
}

// heartbeatTask renews the lease; a heartbeat that fails otherwise is retried at the next
// tick, the lease having two more ticks of slack.
func (s *settings) heartbeatTask(id, lease string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), s.Lease)
	defer cancel()
	_, err := s.Client.Heartbeat(ctx, id, lease, s.Lease, nil)
	switch {
	case IsCancelled(err):
		return cancelled
	case IsLeaseLost(err), IsNotFound(err):
		return leaseLost
	}
	return done
}

// callHandler runs the handler, turning a panic into an error.
func callHandler(ctx context.Context, h Handler, task *Task) (res handlerResult) {
	defer func() {
		if p := recover(); p != nil {
			res = handlerResult{err: fmt.Errorf("handler panicked: %v", p)}
		}
	}()
	result, err := h(ctx, task)
	return handlerResult{result, err}
}

func resultReport(task *Task, lease string, res handlerResult) report {
	if res.err != nil {
		item := failItem(task, lease, res.err)
		return report{fail: &item}
	}
	item := CompleteItem{ID: task.ID, Lease: lease}
	if res.result != nil {
		raw, err := json.Marshal(res.result)
		if err != nil {
			item := failItem(task, lease, errors.New("the handler's result cannot be encoded as JSON: "+err.Error()))
			return report{fail: &item}
		}
		item.Result = raw
	}
	return report{complete: &item}
}
