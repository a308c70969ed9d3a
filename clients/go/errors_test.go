package rota_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	rota "github.com/rota-dev/rota/clients/go"
)

func TestS13ErrorsAndRetries(t *testing.T) {
	c, ctx, q := newClient(t), testContext(t), queueName(t)

	// 404 with the server's code and message, and the request id the call was sent with.
	_, err := c.GetTask(rota.WithRequestID(ctx, "s13-lookup"), "01a20c27-4e6d-7000-8000-000000000000")
	var apiErr *rota.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("not a *rota.Error: %v", err)
	}
	if apiErr.Status != 404 || apiErr.Code != rota.CodeTaskNotFound || apiErr.Message == "" || !rota.IsNotFound(err) {
		t.Fatalf("404: %+v", apiErr)
	}
	if apiErr.RequestID != "s13-lookup" {
		t.Fatalf("request id %q", apiErr.RequestID)
	}

	// Every request carries an X-Request-Id, a fresh one per call, which the server echoes.
	ids := &requestIDs{}
	traced := newClient(t, rota.WithHTTPClient(&http.Client{Transport: ids}))
	for i := 0; i < 2; i++ {
		if _, err := traced.Queues(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids.sent) != 2 || ids.sent[0] == "" || ids.sent[0] == ids.sent[1] || ids.sent[0] != ids.echoed[0] || ids.sent[1] != ids.echoed[1] {
		t.Fatalf("request ids sent %q, echoed %q", ids.sent, ids.echoed)
	}

	// 422 naming the field.
	_, err = c.Enqueue(ctx, q, rota.TaskInput{MaxAttempts: rota.Ptr(0)})
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || apiErr.Code != rota.CodeInvalidField || !strings.Contains(apiErr.Message, "max_attempts") {
		t.Fatalf("422: %v", err)
	}

	// Through a proxy that drops the next connection: a read is tried again and succeeds ...
	task, err := c.Enqueue(ctx, q, rota.TaskInput{})
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, strings.TrimPrefix(server.URL, "http://"))
	flaky := newClient(t, rota.WithURL(p.url()))
	p.drop(1)
	if got, err := flaky.GetTask(ctx, task.ID); err != nil || got.ID != task.ID {
		t.Fatalf("a read through one dropped connection: %v", err)
	}
	if n := p.connections(); n != 2 {
		t.Fatalf("the read took %d connections, want 2 (one dropped, one retried)", n)
	}
	// ... and a write is sent once: its error comes back and nothing was enqueued.
	writer := newClient(t, rota.WithURL(p.url()))
	p.drop(1)
	before := p.connections()
	if _, err := writer.Enqueue(ctx, q, rota.TaskInput{Kind: "never"}); err == nil || rota.ErrorCode(err) != "" {
		t.Fatalf("a write through a dropped connection answered %v, want a transport error", err)
	}
	if n := p.connections() - before; n != 1 {
		t.Fatalf("the write took %d connections, want 1", n)
	}
	list, err := c.ListTasks(ctx, q, rota.ListOptions{Kind: "never"})
	if err != nil || len(list.Tasks) != 0 {
		t.Fatalf("the dropped write enqueued: %v %+v", err, list)
	}
}

// requestIDs records the X-Request-Id of each request and of its answer.
type requestIDs struct {
	sent, echoed []string
}

func (r *requestIDs) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		r.sent = append(r.sent, req.Header.Get("X-Request-Id"))
		r.echoed = append(r.echoed, resp.Header.Get("X-Request-Id"))
	}
	return resp, err
}
