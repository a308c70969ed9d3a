package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// checkKind is the kind of the version-check tasks.
const checkKind = "version.check"

// queueFor is an organisation's own queue. A key limited to it (its queues pattern) can claim
// nothing else, so an agent holding that key gets only its organisation's work: an API key
// cannot be limited to a group within a shared queue, but it can be to a queue.
func queueFor(org string) string { return "versions." + org }

// setup makes the org's queue with a start-rate limit per group (every task carries its org
// as its group, so group_rate is the org's budget against the registry; a shared queue of
// several orgs would give each its own), and a worker key limited to that queue.
func setup(ctx context.Context, c *rota.Client, org string, rate rota.Rate) (token string, err error) {
	queue := queueFor(org)
	_, err = c.UpdateQueue(ctx, queue, rota.QueuePatch{
		GroupRate:   rota.Set(rate),
		MaxAttempts: rota.Ptr(5),
		Backoff:     &rota.Backoff{BaseMs: 5_000, MaxMs: 300_000},
	})
	if err != nil {
		return "", fmt.Errorf("setting up %s: %w", queue, err)
	}
	key, err := c.CreateKey(ctx, rota.NewKey{
		Name:   "version agent " + org,
		Roles:  []string{"worker"},
		Queues: []string{queue},
	})
	if err != nil {
		return "", fmt.Errorf("creating the agent's key: %w", err)
	}
	return key.Token, nil
}

// enqueue asks for a check of each package ("name" or "name@current"), writing each task's
// id to out; a package already waiting for its check is not enqueued twice.
func enqueue(ctx context.Context, c *rota.Client, org string, packages []string, out io.Writer) error {
	var tasks []rota.TaskInput
	for _, p := range packages {
		name, current, _ := strings.Cut(p, "@")
		tasks = append(tasks, rota.TaskInput{
			Kind:      checkKind,
			Group:     org,
			UniqueKey: "check:" + name,
			Payload:   checkRequest{Org: org, Package: name, Current: current},
		})
	}
	if len(tasks) == 0 {
		return fmt.Errorf("name the packages to check")
	}
	answers, err := c.EnqueueBatch(ctx, queueFor(org), tasks)
	if err != nil {
		return err
	}
	for i, a := range answers {
		note := ""
		if a.Duplicate {
			note = " (already waiting)"
		}
		fmt.Fprintf(out, "%s: task %s%s\n", packages[i], a.ID, note)
	}
	return nil
}

// parseRate reads N/PERIOD: 5/1s, 300/1m, 10/500ms.
func parseRate(s string) (rota.Rate, error) {
	n, period, ok := strings.Cut(s, "/")
	limit, err := strconv.Atoi(n)
	if !ok || err != nil || limit < 1 {
		return rota.Rate{}, fmt.Errorf("rate %q: want N/PERIOD, e.g. 5/1s", s)
	}
	d, err := time.ParseDuration(period)
	if err != nil || d < time.Millisecond {
		return rota.Rate{}, fmt.Errorf("rate %q: bad period: %v", s, err)
	}
	return rota.Rate{Limit: limit, PeriodMs: d.Milliseconds()}, nil
}
