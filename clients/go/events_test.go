package rota_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestS11EventsPagingAndFollow(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	if _, err := c.EnqueueBatch(ctx, q, make([]rota.TaskInput, 5)); err != nil {
		t.Fatal(err)
	}
	opts := rota.EventOptions{Queues: []string{q}, Types: []string{"task.enqueued"}, Limit: 2}
	var paged []rota.Event
	for pages := 0; len(paged) < 5; pages++ {
		if pages > 10 {
			t.Fatalf("%d events after %d pages", len(paged), pages)
		}
		page, err := c.Events(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) > 2 {
			t.Fatalf("a page of %d events, limit 2", len(page.Events))
		}
		paged = append(paged, page.Events...)
		opts.After = page.NextCursor
	}
	for i, e := range paged {
		if e.Queue != q || e.Type != "task.enqueued" || (i > 0 && e.Cursor <= paged[i-1].Cursor) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	// Long-polled: nothing new yet, so the page waits for the next commit.
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = c.Enqueue(ctx, q, rota.TaskInput{Kind: "late"})
	}()
	opts.Wait, opts.Limit = 10*time.Second, 100
	page, err := c.Events(ctx, opts)
	if err != nil || len(page.Events) != 1 || page.Events[0].Kind != "late" {
		t.Fatalf("long poll: %v %+v", err, page)
	}

	// Live through a proxy that cuts the stream: the follow resumes from its cursor.
	p := newProxy(t, strings.TrimPrefix(server.URL, "http://"))
	live := newClient(t, rota.WithURL(p.url()))
	followCtx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	events := make(chan rota.Event, 64)
	followed := make(chan error, 1)
	go func() {
		followed <- live.Follow(followCtx, rota.EventOptions{After: page.NextCursor, Queues: []string{q}}, func(e rota.Event) error {
			events <- e
			return nil
		})
	}()
	receive := func(n int) []rota.Event {
		var got []rota.Event
		for len(got) < n {
			select {
			case e := <-events:
				got = append(got, e)
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d events followed", len(got), n)
			}
		}
		return got
	}
	if _, err := c.EnqueueBatch(ctx, q, make([]rota.TaskInput, 3)); err != nil {
		t.Fatal(err)
	}
	before := receive(3)
	p.cutAll()
	if _, err := c.EnqueueBatch(ctx, q, make([]rota.TaskInput, 3)); err != nil {
		t.Fatal(err)
	}
	after := receive(3)
	all := append(before, after...)
	for i, e := range all {
		if e.Type != "task.enqueued" || (i > 0 && e.Cursor <= all[i-1].Cursor) {
			t.Fatalf("followed event %d: %+v", i, e)
		}
	}
	select {
	case e := <-events:
		t.Fatalf("an event more than enqueued: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	if n := p.connections(); n < 2 {
		t.Fatalf("the follow used %d connections; the cut should have made it reconnect", n)
	}
	stopFollowing()
	if err := <-followed; err != context.Canceled {
		t.Fatalf("Follow returned %v", err)
	}
}

func TestFollowReturnsTheCallbacksError(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	if _, err := c.EnqueueBatch(ctx, q, make([]rota.TaskInput, 2)); err != nil {
		t.Fatal(err)
	}
	errEnough := errors.New("enough")
	calls := 0
	err := c.Follow(ctx, rota.EventOptions{Queues: []string{q}}, func(rota.Event) error {
		calls++
		return errEnough
	})
	if !errors.Is(err, errEnough) || calls != 1 {
		t.Fatalf("Follow returned %v after %d calls", err, calls)
	}
}

// A stream that goes silent without closing is taken for dead after Idle, and the follow
// reconnects and resumes.
func TestS11FollowReconnectsAfterASilentConnection(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)
	p := newProxy(t, strings.TrimPrefix(server.URL, "http://"))
	live := newClient(t, rota.WithURL(p.url()))
	followCtx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	events := make(chan rota.Event, 16)
	go func() {
		_ = live.Follow(followCtx, rota.EventOptions{Queues: []string{q}, Idle: 500 * time.Millisecond}, func(e rota.Event) error {
			events <- e
			return nil
		})
	}()
	next := func() rota.Event {
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
		}
		return rota.Event{}
	}
	first, err := c.Enqueue(ctx, q, rota.TaskInput{})
	if err != nil {
		t.Fatal(err)
	}
	if e := next(); *e.TaskID != first.ID {
		t.Fatalf("first event %+v", e)
	}
	p.freeze()
	second, err := c.Enqueue(ctx, q, rota.TaskInput{})
	if err != nil {
		t.Fatal(err)
	}
	if e := next(); *e.TaskID != second.ID {
		t.Fatalf("after the silence %+v", e)
	}
	if n := p.connections(); n < 2 {
		t.Fatalf("%d connections: the follow did not reconnect", n)
	}
}
