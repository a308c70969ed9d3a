package rota_test

import (
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestS08QueueStatsSettingsAndGroups(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	if _, err := c.EnqueueBatch(ctx, q, []rota.TaskInput{{}, {}, {}}); err != nil {
		t.Fatal(err)
	}
	stats, err := c.GetQueue(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Name != q || stats.Counts.Ready != 3 || stats.Settings.MaxAttempts != 25 || stats.Flow.Running != 0 {
		t.Fatalf("stats %+v", stats)
	}
	queues, err := c.Queues(ctx)
	if err != nil || !containsQueue(queues, q) {
		t.Fatalf("the queue list lacks %s: %v", q, err)
	}

	// Paused, nothing is claimed; resumed, tasks are.
	if info, err := c.PauseQueue(ctx, q); err != nil || !info.Settings.Paused {
		t.Fatalf("pause: %v %+v", err, info)
	}
	if got, err := c.Claim(ctx, q, rota.ClaimOptions{Worker: "s08", Max: 3}); err != nil || len(got) != 0 {
		t.Fatalf("claim from a paused queue: %v %d", err, len(got))
	}
	if _, err := c.ResumeQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	claimed, err := c.Claim(ctx, q, rota.ClaimOptions{Worker: "s08", Max: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim after resume: %v %d", err, len(claimed))
	}

	// Purge: only tasks in the state named go.
	if _, err := c.Fail(ctx, rota.FailItem{ID: claimed[0].ID, Lease: claimed[0].Lease.Token, Error: "no", Dead: true}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.PurgeQueue(ctx, q, rota.StateDead); err != nil || n != 1 {
		t.Fatalf("purge: %v %d", err, n)
	}
	if stats, err = c.GetQueue(ctx, q); err != nil || stats.Counts.Dead != 0 || stats.Counts.Ready != 2 {
		t.Fatalf("after the purge: %v %+v", err, stats.Counts)
	}

	// Flow-control settings, and tasks with a group.
	g := queueName(t)
	info, err := c.UpdateQueue(ctx, g, rota.QueuePatch{
		Concurrency:      rota.Set(3),
		Rate:             rota.Set(rota.Rate{Limit: 100, PeriodMs: 1000, Burst: 10}),
		GroupConcurrency: rota.Set(1),
		MaxAttempts:      rota.Ptr(5),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := info.Settings
	if s.Concurrency == nil || *s.Concurrency != 3 || s.Rate == nil || s.Rate.Limit != 100 || s.GroupConcurrency == nil || *s.GroupConcurrency != 1 || s.MaxAttempts != 5 {
		t.Fatalf("settings %+v", s)
	}
	var inputs []rota.TaskInput
	for _, org := range []string{"org-1", "org-1", "org-1", "org-2", "org-2"} {
		inputs = append(inputs, rota.TaskInput{Group: org})
	}
	if _, err := c.EnqueueBatch(ctx, g, inputs); err != nil {
		t.Fatal(err)
	}
	got, err := c.Claim(ctx, g, rota.ClaimOptions{Worker: "s08", Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || *got[0].Group == *got[1].Group {
		t.Fatalf("with group_concurrency 1, a claim gets one task per group: %d tasks", len(got))
	}
	page, err := c.Groups(ctx, g, "", 10)
	if err != nil || len(page.Groups) != 2 || page.Groups[0].Group != "org-1" || page.Groups[0].Running != 1 || page.Groups[0].Ready != 2 {
		t.Fatalf("groups: %v %+v", err, page)
	}
	if _, err := c.SetGroup(ctx, g, "org-1", rota.GroupSettings{Concurrency: rota.Ptr(2), Weight: 2}); err != nil {
		t.Fatal(err)
	}
	stats, err = c.GetQueue(ctx, g)
	if err != nil || stats.Flow.Running != 2 || stats.Flow.Held.GroupConcurrency == 0 {
		t.Fatalf("flow: %v %+v", err, stats.Flow)
	}
	// Clearing a limit lifts it and leaves the others.
	info, err = c.UpdateQueue(ctx, g, rota.QueuePatch{Concurrency: rota.Clear[int]()})
	if err != nil || info.Settings.Concurrency != nil || info.Settings.GroupConcurrency == nil {
		t.Fatalf("clear: %v %+v", err, info.Settings)
	}
}

func containsQueue(queues []rota.QueueInfo, name string) bool {
	for _, q := range queues {
		if q.Name == name {
			return true
		}
	}
	return false
}
