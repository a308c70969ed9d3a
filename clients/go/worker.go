package rota

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxClaim is the most tasks one claim asks for; a worker with more free slots claims again.
const maxClaim = 100

// Worker claims tasks of one queue and runs them with its Handler: claims in batches with
// long-poll, at most Concurrency handlers at once, a heartbeat for each running task, outcomes
// reported in batches. A cancelled task (heartbeat answered 409 task_cancelled) or a lost lease
// cancels the handler's ctx and is not reported. A handler that spawns tasks (Client.Spawn with
// its ctx) hands its lease off: that run reports nothing and is not a lost lease. Go cannot stop a goroutine from outside, so a
// handler must return once its ctx ends: its slot stays taken, and Run waits for it, until it
// does. Fields left zero take the defaults named.
type Worker struct {
	Client  *Client
	Queue   string
	Handler Handler
	// Name is the worker's name in leases (default hostname-pid).
	Name string
	// Kinds limits the worker to these task kinds; empty is any.
	Kinds []string
	// Concurrency is the most handlers running at once (default 1).
	Concurrency int
	// Timeout is the longest a handler may run; past it the attempt fails (default none).
	Timeout time.Duration
	// Lease is asked for on claim and on each heartbeat (default 30 s).
	Lease time.Duration
	// HeartbeatEvery is how often a running task's lease is renewed, at most a third of the
	// lease; it bounds the time from a cancel to the handler's ctx ending (default 1 s).
	HeartbeatEvery time.Duration
	// PollWait is the longest a claim waits for work before asking again (default 20 s).
	PollWait time.Duration
	// Grace is how long running handlers may finish after shutdown begins; those still
	// running then are cancelled and failed as temporary so they run again elsewhere at once
	// (default 10 s).
	Grace time.Duration
	// Logger reports outages and cancels (default log.Default()).
	Logger *log.Logger
}

// WorkerStats is what a worker did.
type WorkerStats struct {
	Succeeded int64
	Failed    int64
	// LeaseLost counts tasks abandoned because their lease was lost.
	LeaseLost int64
	// Cancelled counts tasks whose handler was stopped because the task was cancelled.
	Cancelled int64
	// Interrupted counts tasks failed back to the queue because the worker shut down.
	Interrupted int64
	// Spawned counts runs whose handler spawned tasks (Client.Spawn): the task waits for them
	// and runs again, and the run reported nothing.
	Spawned int64
}

type counters struct {
	succeeded, failed, leaseLost, cancelled, interrupted, spawned atomic.Int64
}

func (c *counters) stats() WorkerStats {
	return WorkerStats{
		Succeeded:   c.succeeded.Load(),
		Failed:      c.failed.Load(),
		LeaseLost:   c.leaseLost.Load(),
		Cancelled:   c.cancelled.Load(),
		Interrupted: c.interrupted.Load(),
		Spawned:     c.spawned.Load(),
	}
}

// refused is where an item the server refused in a batch is counted.
func (c *counters) refused(e *ErrorDetail) *atomic.Int64 {
	if e != nil && e.Code == CodeTaskCancelled {
		return &c.cancelled
	}
	return &c.leaseLost
}

// settings are the worker's fields with the defaults filled in.
type settings struct {
	Worker
	heartbeat time.Duration
}

func (w *Worker) settings() (settings, error) {
	s := settings{Worker: *w}
	if s.Client == nil || s.Handler == nil || s.Queue == "" {
		return s, errors.New("rota: a Worker needs a Client, a Queue and a Handler")
	}
	if s.Name == "" {
		host, _ := os.Hostname()
		s.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if s.Concurrency < 1 {
		s.Concurrency = 1
	}
	if s.Lease <= 0 {
		s.Lease = 30 * time.Second
	}
	if s.HeartbeatEvery <= 0 {
		s.HeartbeatEvery = time.Second
	}
	if s.PollWait <= 0 {
		s.PollWait = 20 * time.Second
	}
	if s.Grace <= 0 {
		s.Grace = 10 * time.Second
	}
	if s.Logger == nil {
		s.Logger = log.Default()
	}
	s.heartbeat = s.HeartbeatEvery
	if third := s.Lease / 3; s.heartbeat > third {
		s.heartbeat = third
	}
	if s.heartbeat < 10*time.Millisecond {
		s.heartbeat = 10 * time.Millisecond
	}
	return s, nil
}

// Run claims and runs tasks until ctx is cancelled, then claims nothing more, lets running
// handlers finish (for up to Grace), reports their outcomes and returns what it did. A claim
// the server refuses with a 4xx answer (a bad queue name, a missing permission) stops the
// worker the same way and is returned; transport failures, 429 and 503 are retried every
// second.
func (w *Worker) Run(ctx context.Context) (WorkerStats, error) {
	s, err := w.settings()
	if err != nil {
		return WorkerStats{}, err
	}
	var (
		stats   counters
		running sync.WaitGroup
		stop    = make(chan struct{}) // closed when the grace period ends
		slots   = make(chan struct{}, s.Concurrency)
		reports = make(chan report, 2*s.Concurrency+16)
	)
	reporterDone := make(chan struct{})
	go func() {
		defer close(reporterDone)
		reportLoop(s.Client, reports, &stats)
	}()
	fatal := s.claimLoop(ctx, slots, func(task Task) {
		running.Add(1)
		go func() {
			defer running.Done()
			defer func() { <-slots }()
			s.runTask(&task, reports, &stats, stop)
		}()
	})
	grace := s.Grace
	if fatal != nil {
		grace = 0
	}
	drained := make(chan struct{})
	go func() { running.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(grace):
		close(stop)
		<-drained
	}
	close(reports)
	<-reporterDone
	return stats.stats(), fatal
}

// claimLoop claims while ctx lives, as many tasks as there are free slots, and starts each;
// it returns a claim error that asking again will not mend.
func (s *settings) claimLoop(ctx context.Context, slots chan struct{}, start func(Task)) error {
	outage := false
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		free := 1
		for free < maxClaim && tryAcquire(slots) {
			free++
		}
		tasks, err := s.Client.Claim(ctx, s.Queue, ClaimOptions{
			Worker:  s.Name,
			Kinds:   s.Kinds,
			Max:     free,
			WaitMs:  s.PollWait.Milliseconds(),
			LeaseMs: s.Lease.Milliseconds(),
		})
		for i := len(tasks); i < free; i++ {
			<-slots
		}
		if ctx.Err() != nil {
			// Shutdown began during the claim. Tasks it answered run (and may finish within
			// the grace); a claim cut short may have leased some, which come back when their
			// lease ends.
			for _, t := range tasks {
				start(t)
			}
			return nil
		}
		if err != nil {
			if !retryable(err) && !serverFault(err) {
				return err
			}
			if !outage {
				s.Logger.Printf("rota: cannot claim from %s, retrying every second: %v", s.Queue, err)
				outage = true
			}
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if outage {
			s.Logger.Printf("rota: claiming from %s again", s.Queue)
			outage = false
		}
		for _, t := range tasks {
			start(t)
		}
	}
}

func tryAcquire(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}
