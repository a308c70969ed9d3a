package rota_test

import (
	"net"
	"sync"
	"testing"
)

// proxy is a TCP proxy in front of the test server that can refuse connections and cut the
// ones it carries, to show what the client does when the network fails.
type proxy struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	conns    []net.Conn
	dropNext int // connections to close at once, before reading anything
	accepted int
	frozen   map[net.Conn]bool // connections that carry nothing more, yet stay open
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		drop := p.dropNext > 0
		if drop {
			p.dropNext--
		}
		p.mu.Unlock()
		if drop {
			conn.Close()
			continue
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			conn.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, conn, upstream)
		p.mu.Unlock()
		go p.pipe(conn, upstream)
		go p.pipe(upstream, conn)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen := p.frozen[src]
		p.mu.Unlock()
		if frozen {
			// Swallow what comes until the connection is closed at the test's end.
			if err != nil {
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze makes every connection carried so far go silent without closing.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = map[net.Conn]bool{}
	}
	for _, c := range p.conns {
		p.frozen[c] = true
	}
}

// drop makes the next n connections close before anything is read.
func (p *proxy) drop(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropNext = n
}

func (p *proxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// cutAll closes every connection carried so far.
func (p *proxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
