package rota

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Follow reads the event log live (Server-Sent Events from GET /v1/events/stream), calling fn
// for each event in order, from after opts.After. When the connection drops it reconnects with
// Last-Event-ID and resumes after the last event fn got, so nothing is missed or repeated. It
// returns when ctx ends (ctx.Err()), when fn returns an error (that error), or when the
// server refuses the stream with a 4xx answer.
func (c *Client) Follow(ctx context.Context, opts EventOptions, fn func(Event) error) error {
	last := opts.After
	backoff := 100 * time.Millisecond
	for {
		got, err := c.stream(ctx, opts, last, func(e Event) error {
			last = e.Cursor
			return fn(e)
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var stop *stopFollowing
		if errors.As(err, &stop) {
			return stop.err
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.Status < 500 && apiErr.Status != 429 {
			return err
		}
		if got {
			backoff = 100 * time.Millisecond
		} else if backoff < 5*time.Second {
			backoff *= 2
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stopFollowing carries the callback's own error out of the stream.
type stopFollowing struct{ err error }

func (s *stopFollowing) Error() string { return s.err.Error() }

// stream follows one connection until it ends; got says whether it delivered any event.
func (c *Client) stream(ctx context.Context, opts EventOptions, after int64, fn func(Event) error) (got bool, err error) {
	q := opts.query()
	q.Del("after")
	u := c.base + "/v1/events/stream"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	idle := opts.Idle
	if idle <= 0 {
		idle = 45 * time.Second
	}
	// A connection that went silent without closing (a dead peer, a dropped route) would block
	// the read for ever: nothing for idle, not even a keep-alive, ends it.
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := time.AfterFunc(idle, cancel)
	defer watchdog.Stop()
	id := requestID(ctx)
	resp, err := c.do(connCtx, func() (*http.Request, error) {
		req, err := c.newRequest(connCtx, http.MethodGet, u, id, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
		return req, nil
	})
	if err != nil {
		return false, fmt.Errorf("rota: following events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
		return false, answerError(resp.StatusCode, raw, id)
	}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var data strings.Builder
	for scanner.Scan() {
		watchdog.Reset(idle)
		line := scanner.Text()
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			var e Event
			if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
				return got, fmt.Errorf("rota: unexpected event: %w", err)
			}
			data.Reset()
			got = true
			watchdog.Stop() // the callback's own time is not the connection's silence
			if err := fn(e); err != nil {
				return got, &stopFollowing{err}
			}
			watchdog.Reset(idle)
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
		// id:, event: and comments (": keep-alive") carry nothing the data does not.
	}
	if err := scanner.Err(); err != nil {
		if connCtx.Err() != nil && ctx.Err() == nil {
			return got, fmt.Errorf("rota: following events: nothing arrived for %s; reconnecting", idle)
		}
		return got, fmt.Errorf("rota: following events: %w", err)
	}
	return got, errors.New("rota: the event stream ended")
}
