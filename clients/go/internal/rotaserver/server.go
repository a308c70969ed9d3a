// Package rotaserver starts a `rota serve` of its own, on a free port and a fresh data
// directory, for the tests, the benchmark and the examples' tests.
package rotaserver

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Server is a running `rota serve`.
type Server struct {
	// URL is its base URL, http://127.0.0.1:<port>.
	URL string
	// Token is its admin token.
	Token string
	dir   string
	cmd   *exec.Cmd
}

// Bin is the server binary: ROTA_BIN, else target/debug/rota at the repository root
// (root is the path from the caller's directory to it).
func Bin(root string) string {
	if bin := os.Getenv("ROTA_BIN"); bin != "" {
		return bin
	}
	return filepath.Join(root, "target", "debug", "rota")
}

// Start runs bin serve with env added to this process's environment, and waits until it is
// healthy. Its log goes to server.log in its directory, shown when it does not start.
func Start(bin string, env ...string) (*Server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no server binary at %s (set ROTA_BIN or run cargo build -p rota): %w", bin, err)
	}
	dir, err := os.MkdirTemp("", "rota-go-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(append(os.Environ(), "ROTA_LOG=warn"), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{URL: "http://" + addr, dir: dir, cmd: cmd}
	if err := s.waitHealthy(30 * time.Second); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		s.Stop()
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	token, err := os.ReadFile(filepath.Join(dir, "data", "admin-token"))
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.Token = strings.TrimSpace(string(token))
	return s, nil
}

// Stop kills the server and removes its data.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	os.RemoveAll(s.dir)
}

func (s *Server) waitHealthy(within time.Duration) error {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(s.URL + "/healthz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("the server at %s did not become healthy within %s", s.URL, within)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
