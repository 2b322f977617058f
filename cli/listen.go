package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/hook/promhook"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/transport"
)

// listenFlag adds --listen to a long-running command's flags.
func listenFlag(f *pflag.FlagSet, addr *string) {
	f.StringVar(addr, "listen", "", "serve /metrics (Prometheus), /healthz and /readyz on this address, e.g. :9090 or 127.0.0.1:9090 (default: off)")
}

// probeTimeout bounds each readiness check.
const probeTimeout = 2 * time.Second

// endpoints serves a long-running command's metrics and health on --listen.
type endpoints struct {
	srv     *http.Server
	done    chan struct{}
	running atomic.Bool // the command checked the database and started
	checks  []probe
}

// probe is one readiness check.
type probe struct {
	name  string
	check func(ctx context.Context) error
}

// inspector returns the broker's transport.Inspector, nil when the
// transport has none.
func (tr *Transport) inspector() transport.Inspector {
	for _, v := range []any{tr.Subscriber, tr.Publisher, tr.DeadLetters} {
		if in, ok := v.(transport.Inspector); ok {
			return in
		}
	}
	return nil
}

// listen starts serving on addr: /metrics from a new promhook.Hooks over src
// (returned, to join the command's hooks), /healthz, and /readyz, which
// pings the database and the broker. The server stops with close.
func (s *session) listen(addr string, tr *Transport, cfg promhook.Config) (*endpoints, hook.Hooks, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, UsageError{Err: errtext.Errorf("--listen %s: %w: pick a free address, e.g. :9090", addr, err)}
	}
	in := tr.inspector()
	if in != nil {
		cfg.Broker = in
	}
	h := promhook.New(&cfg)
	metrics, err := h.Handler()
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	e := &endpoints{done: make(chan struct{})}
	e.checks = append(e.checks, probe{"database", s.app.DB.PingContext})
	if in != nil {
		e.checks = append(e.checks, probe{"broker", in.Ping})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", e.ready)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(e.done)
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("cqrsync: --listen server failed", "error", err)
		}
	}()
	fmt.Fprintf(s.env.Err, "cqrsync: serving /metrics, /healthz and /readyz on http://%s\n", ln.Addr())
	return e, h, nil
}

// ready answers 200 when the command runs (its startup checks passed) and
// every probe passes, 503 otherwise; the body lists each check.
func (e *endpoints) ready(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	ok := e.running.Load()
	if ok {
		b.WriteString("started: ok (migration and tables checked)\n")
	} else {
		b.WriteString("started: not yet (checking the database, connecting)\n")
	}
	for _, p := range e.checks {
		ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
		err := p.check(ctx)
		cancel()
		if err != nil {
			ok = false
			fmt.Fprintf(&b, "%s: %v\n", p.name, err)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", p.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, b.String())
}

// close stops the server (nil e does nothing).
func (e *endpoints) close() {
	if e == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
	<-e.done
}

// setRunning marks the command started (nil e does nothing).
func (e *endpoints) setRunning() {
	if e != nil {
		e.running.Store(true)
	}
}
