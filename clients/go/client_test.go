package rota_test

import (
	"context"
	"errors"
	"net"
	"os"
	"regexp"
	"testing"
	"time"

	rota "github.com/rota-dev/rota/clients/go"
)

// The library's version is the server's: the workspace Cargo.toml's.
func TestVersionMatchesTheServer(t *testing.T) {
	cargo, err := os.ReadFile("../../Cargo.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\[workspace\.package\][^\[]*?\bversion\s*=\s*"([^"]+)"`).FindSubmatch(cargo)
	if m == nil {
		t.Fatal("no [workspace.package] version in Cargo.toml")
	}
	if string(m[1]) != rota.Version {
		t.Fatalf("rota.Version is %s, the server's %s", rota.Version, m[1])
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	t.Setenv("ROTA_URL", server.URL)
	t.Setenv("ROTA_TOKEN", server.Token)
	c, err := rota.New()
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != server.URL {
		t.Fatalf("base URL %s", c.BaseURL())
	}
	who, err := c.WhoAmI(testContext(t))
	if err != nil || len(who.Roles) == 0 || who.Roles[0] != "admin" {
		t.Fatalf("whoami with ROTA_TOKEN: %v %+v", err, who)
	}
	t.Setenv("ROTA_TOKEN", "")
	anonymous, err := rota.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anonymous.WhoAmI(testContext(t)); rota.ErrorCode(err) != rota.CodeUnauthorized {
		t.Fatalf("without a token: %v", err)
	}
}

func TestTimeoutIsSettable(t *testing.T) {
	ctx, q := testContext(t), queueName(t)
	// A server that accepts connections and never answers.
	stalled, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	go func() {
		var held []net.Conn
		for {
			conn, err := stalled.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, conn)
		}
	}()
	c := newClient(t, rota.WithURL("http://"+stalled.Addr().String()), rota.WithTimeout(200*time.Millisecond), rota.WithReadAttempts(1))
	start := time.Now()
	_, err = c.GetTask(ctx, "01a20c27-4e6d-7000-8000-000000000000")
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
		t.Fatalf("a request to a stalled server: %v after %s", err, took)
	}
	// A long poll gets its wait on top of the timeout.
	live := newClient(t, rota.WithTimeout(300*time.Millisecond))
	start = time.Now()
	tasks, err := live.Claim(ctx, q, rota.ClaimOptions{Worker: "t", WaitMs: 1000})
	if took := time.Since(start); err != nil || len(tasks) != 0 || took < 900*time.Millisecond {
		t.Fatalf("a 1 s long poll under a 300 ms timeout: %v after %s", err, took)
	}
}
