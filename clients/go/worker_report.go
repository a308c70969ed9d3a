package rota

import (
	"context"
	"sync/atomic"
	"time"
)

// report is one task's outcome, on its way to the server.
type report struct {
	complete *CompleteItem
	fail     *FailItem
}

// maxReportBatch is the most outcomes one batch request carries.
const maxReportBatch = 500

// reportLoop sends outcomes in batches: whatever has arrived while the previous batch was in
// flight. It returns when reports is closed and drained.
func reportLoop(c *Client, reports <-chan report, stats *counters) {
	for first := range reports {
		batch := []report{first}
	more:
		for len(batch) < maxReportBatch {
			select {
			case r, ok := <-reports:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		var done []CompleteItem
		var failed []FailItem
		for _, r := range batch {
			if r.complete != nil {
				done = append(done, *r.complete)
			} else {
				failed = append(failed, *r.fail)
			}
		}
		if len(done) > 0 {
			sendCompletions(c, done, stats)
		}
		if len(failed) > 0 {
			out, err := withRetry(func(ctx context.Context) ([]ItemOutcome, error) { return c.FailBatch(ctx, failed) })
			count(out, err, len(failed), &stats.failed, stats)
		}
	}
}

func sendCompletions(c *Client, items []CompleteItem, stats *counters) {
	out, err := withRetry(func(ctx context.Context) ([]ItemOutcome, error) { return c.CompleteBatch(ctx, items) })
	if code := statusOf(err); code == 413 || code == 422 {
		// One item (a result over the server's size limit, say) made the server refuse the
		// whole batch: send them one by one, so only that item fails.
		for _, item := range items {
			completeOne(c, item, stats)
		}
		return
	}
	count(out, err, len(items), &stats.succeeded, stats)
}

// completeOne completes one task; a result the server refuses fails the task with the reason.
func completeOne(c *Client, item CompleteItem, stats *counters) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Complete(ctx, item.ID, item.Lease, item.Result)
	counter := &stats.succeeded
	if code := statusOf(err); code == 413 || code == 422 {
		_, err = c.Fail(ctx, FailItem{ID: item.ID, Lease: item.Lease, Error: "the server refused the task's result: " + err.Error()})
		counter = &stats.failed
	}
	switch {
	case err == nil:
		counter.Add(1)
	case IsCancelled(err):
		stats.cancelled.Add(1)
	default:
		stats.leaseLost.Add(1)
	}
}

// count adds a batch's answers: each item done to ok, each refused where its code says; a
// batch that never got an answer counts as lost leases (the tasks run again when they expire).
func count(out []ItemOutcome, err error, n int, ok *atomic.Int64, stats *counters) {
	if err != nil {
		stats.leaseLost.Add(int64(n))
		return
	}
	for _, item := range out {
		if item.OK {
			ok.Add(1)
		} else {
			stats.refused(item.Error).Add(1)
		}
	}
}

// withRetry sends a batch, trying again a few times while the server cannot be reached or is
// busy: completing twice is safe (the second answer is lease_lost).
func withRetry(call func(context.Context) ([]ItemOutcome, error)) ([]ItemOutcome, error) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := call(ctx)
		cancel()
		if err == nil || !retryable(err) || attempt >= 4 {
			return out, err
		}
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
}
