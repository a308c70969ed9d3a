package rota_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
	"github.com/rota-dev/rota/clients/go/internal/rotaserver"
)

// server is the `rota serve` the tests share, started by TestMain.
var server *rotaserver.Server

func TestMain(m *testing.M) {
	var err error
	// Loopback webhooks, for the tests' receivers.
	server, err = rotaserver.Start(rotaserver.Bin("../.."), "ROTA_WEBHOOKS_ALLOW_PRIVATE=true")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rota tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// newClient is a client of the test server with the admin token, unless opts say otherwise.
func newClient(t *testing.T, opts ...rota.Option) *rota.Client {
	t.Helper()
	c, err := rota.New(append([]rota.Option{rota.WithURL(server.URL), rota.WithToken(server.Token)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// queueName is a queue of the test's own.
func queueName(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeName.ReplaceAllString(t.Name(), "-")
	if len(name) > 100 {
		name = name[:100]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rawJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startWorker runs w until the returned stop is called, which returns what Run returned.
func startWorker(t *testing.T, w *rota.Worker) (stop func() (rota.WorkerStats, error)) {
	ctx, cancel := context.WithCancel(context.Background())
	type ran struct {
		stats rota.WorkerStats
		err   error
	}
	result := make(chan ran, 1)
	go func() {
		stats, err := w.Run(ctx)
		result <- ran{stats, err}
	}()
	var once *ran
	stop = func() (rota.WorkerStats, error) {
		if once == nil {
			cancel()
			select {
			case r := <-result:
				once = &r
			case <-time.After(30 * time.Second):
				t.Fatal("the worker did not stop within 30 s")
			}
		}
		return once.stats, once.err
	}
	t.Cleanup(func() { _, _ = stop() })
	return stop
}
