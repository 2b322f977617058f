package cqrsynctesting

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a server (a database, a broker) whose
// connections a test can cut, as a network failure or a server restart
// would, without touching other tests' connections.
type Proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	links    map[*link]struct{}
	accepted int
	refuse   bool // close new connections at once

	// cutLeft, when positive, drops every link once that many more bytes
	// went from clients to the server.
	cutLeft int64
	cut     chan struct{} // closed and replaced on every drop

	wg sync.WaitGroup
}

type link struct{ client, server net.Conn }

func (l *link) close() {
	_ = l.client.Close()
	_ = l.server.Close()
}

// NewProxy listens on a free loopback port and forwards to target
// (host:port) until the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, links: make(map[*link]struct{}), cut: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns base (a server URL) with its host replaced by the proxy's.
func (p *Proxy) URL(tb testing.TB, base string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("proxy: parse URL: %v", err)
	}
	u.Host = p.Addr()
	return u.String()
}

// Cut closes every open connection and refuses new ones until Restore: the
// server is gone.
func (p *Proxy) Cut() {
	p.Refuse(true)
	p.Drop()
}

// Restore lets connections through again.
func (p *Proxy) Restore() { p.Refuse(false) }

// Drop closes every open connection at once and returns how many there
// were; new connections are still accepted (unless refused): a network
// blip.
func (p *Proxy) Drop() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	clear(p.links)
	close(p.cut)
	p.cut = make(chan struct{})
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	return len(links)
}

// CutAfter arms a Drop once n more bytes went from clients to the server,
// and returns a channel closed when it happened.
func (p *Proxy) CutAfter(n int64) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLeft = n
	return p.cut
}

// Refuse makes the proxy close new connections at once (a server that is
// down) or accept them again.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Accepted returns how many connections the proxy accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		if p.refuse { // cut while dialling
			p.mu.Unlock()
			l.close()
			continue
		}
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, c, s, true)
		go p.pipe(l, s, c, false)
	}
}

// pipe copies one direction of a link; upstream counts bytes for CutAfter.
func (p *Proxy) pipe(l *link, from, to net.Conn, upstream bool) {
	defer p.wg.Done()
	defer func() {
		l.close()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	if !upstream {
		_, _ = io.Copy(to, from)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if p.countUpstream(n) {
				// Forward nothing of this read: the cut happens in the
				// middle of the client's stream.
				p.Drop()
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// countUpstream counts n bytes towards an armed cut and reports whether the
// cut is due.
func (p *Proxy) countUpstream(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutLeft <= 0 {
		return false
	}
	p.cutLeft -= int64(n)
	if p.cutLeft > 0 {
		return false
	}
	p.cutLeft = 0
	return true
}

// ProxiedPostgres creates an empty schema as PostgresDSN does and returns
// a proxy to the server with a URL of that schema through the proxy, so
// that a test can cut the connections its code holds.
func ProxiedPostgres(tb testing.TB) (*Proxy, string) {
	tb.Helper()
	dsn := PostgresDSN(tb)
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("proxy: parse URL: %v", err)
	}
	p := NewProxy(tb, u.Host)
	return p, p.URL(tb, dsn)
}
