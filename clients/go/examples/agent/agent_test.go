package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
	"github.com/rota-dev/rota/clients/go/internal/rotaserver"
)

// The agent of org-42 checks its org's packages at most 5 a second, and cannot claim another
// org's work.
func TestAgentGetsOnlyItsOrgsWorkUnderItsRate(t *testing.T) {
	srv, err := rotaserver.Start(rotaserver.Bin("../../../.."))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := rota.New(rota.WithURL(srv.URL), rota.WithToken(srv.Token))
	if err != nil {
		t.Fatal(err)
	}
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"version": "4.18.2"})
	}))
	defer registry.Close()

	token, err := setup(ctx, admin, "org-42", rota.Rate{Limit: 5, PeriodMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup(ctx, admin, "org-7", rota.Rate{Limit: 5, PeriodMs: 1000}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := enqueue(ctx, admin, "org-42", []string{"express@4.17.0", "a", "b", "c", "d", "e", "a"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "(already waiting)\n") {
		t.Fatalf("a package named twice is checked once:\n%s", out.String())
	}
	if err := enqueue(ctx, admin, "org-7", []string{"other"}, io.Discard); err != nil {
		t.Fatal(err)
	}

	agent, err := rota.New(rota.WithURL(srv.URL), rota.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts []time.Time
	c := &checker{org: "org-42", registry: registry.URL}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := (&rota.Worker{
			Client: agent, Queue: queueFor("org-42"), Kinds: []string{checkKind}, Concurrency: 6, PollWait: time.Second,
			Handler: func(ctx context.Context, task *rota.Task) (any, error) {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				return c.check(ctx, task)
			},
		}).Run(runCtx)
		done <- err
	}()
	for {
		q, err := admin.GetQueue(ctx, queueFor("org-42"))
		if err != nil {
			t.Fatal(err)
		}
		if q.Counts.Succeeded == 6 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("checks not done: %+v", q.Counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	if spread := starts[len(starts)-1].Sub(starts[0]); spread < 800*time.Millisecond {
		t.Fatalf("6 checks started within %s: over the org's rate of 5 a second", spread)
	}
	list, err := admin.ListTasks(ctx, queueFor("org-42"), rota.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range list.Tasks {
		var res checkResult
		if err := json.Unmarshal(task.Result, &res); err != nil || res.Latest != "4.18.2" || res.Outdated != (res.Package == "express") {
			t.Fatalf("result %s: %v", task.Result, err)
		}
	}

	// The org-42 key can do nothing with org-7's queue.
	_, err = agent.Claim(ctx, queueFor("org-7"), rota.ClaimOptions{Worker: "intruder"})
	if rota.ErrorCode(err) != rota.CodeForbidden || !strings.Contains(err.Error(), "versions.org-7") {
		t.Fatalf("claiming another org's work: %v", err)
	}
	if q, err := admin.GetQueue(ctx, queueFor("org-7")); err != nil || q.Counts.Ready != 1 {
		t.Fatalf("org-7's task: %v %+v", err, q)
	}
}
