package rota_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// server is the `rota serve` the tests share, started by TestMain.
var server struct {
	url   string
	token string
}

func TestMain(m *testing.M) {
	code, err := runWithServer(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rota tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// runWithServer starts the server from ROTA_BIN (default <repo>/target/debug/rota) on a free
// port and a fresh data directory, runs the tests and stops it.
func runWithServer(m *testing.M) (int, error) {
	bin := os.Getenv("ROTA_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "debug", "rota")
	}
	if _, err := os.Stat(bin); err != nil {
		return 0, fmt.Errorf("no server binary at %s (set ROTA_BIN or run cargo build -p rota): %w", bin, err)
	}
	dir, err := os.MkdirTemp("", "rota-go-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"))
	// Loopback webhooks, for the test's receiver.
	cmd.Env = append(os.Environ(), "ROTA_WEBHOOKS_ALLOW_PRIVATE=true", "ROTA_LOG=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	server.url = "http://" + addr
	if err := waitHealthy(server.url, 30*time.Second); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		return 0, fmt.Errorf("%w\n%s", err, log)
	}
	token, err := os.ReadFile(filepath.Join(dir, "data", "admin-token"))
	if err != nil {
		return 0, err
	}
	server.token = strings.TrimSpace(string(token))
	return m.Run(), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitHealthy(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the server at %s did not become healthy within %s", url, within)
}

// newClient is a client of the test server with the admin token, unless opts say otherwise.
func newClient(t *testing.T, opts ...rota.Option) *rota.Client {
	t.Helper()
	c, err := rota.New(append([]rota.Option{rota.WithURL(server.url), rota.WithToken(server.token)}, opts...)...)
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
