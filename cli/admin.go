package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync/admin"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
)

func newAdminCommand(st *state) *cobra.Command {
	var (
		listen   string
		runRelay bool
	)
	cmd := &cobra.Command{
		Use:   "admin --listen ADDR",
		Short: "Serve the admin page: models, outbox, freshness, dead letters, sync",
		Long: `admin serves the operator page (package admin) over HTTP until stopped:
the models of both sides, the outbox backlog and relay state, each model's row
count and newest change on master and replica, the dead letters by model and
reason with retry and purge, and django-cqrs's admin action: select a master
model's rows by a filter or keys and sync them to every replica or to one
queue (what cqrsync sync does).

It never serves without credentials: set admin.token (or
CQRSYNC_ADMIN_TOKEN), or admin.username and admin.password
(CQRSYNC_ADMIN_PASSWORD), in the configuration; without, it exits 2. Every
action needs the page's CSRF token and the page's own Origin. Serve it on
localhost or behind a TLS proxy: the page itself speaks plain HTTP.

A sync enqueues SYNC events in the outbox; the service's relay sends them.
--relay runs a relay in this process too, for a service that has none
running. It runs until SIGTERM or SIGINT (Ctrl-C).`,
		Example: `  CQRSYNC_ADMIN_TOKEN=$(openssl rand -hex 24) cqrsync admin --listen 127.0.0.1:8080
  cqrsync admin --listen :8080 --relay`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" {
				return UsageError{Err: errors.New("--listen is required, e.g. --listen 127.0.0.1:8080")}
			}
			check := func(app *App) error {
				a := app.Admin
				if a.Token == "" && a.Username == "" && a.Password == "" {
					return UsageError{Err: errors.New("admin: no credentials configured: set admin.token (or CQRSYNC_ADMIN_TOKEN), or admin.username and admin.password, in the configuration; the admin page is never served without authentication")}
				}
				if runRelay && (app.Master == nil || app.OpenTransport == nil) {
					return UsageError{Err: errors.New("--relay needs master models and a broker, and the setup has none")}
				}
				if runRelay && app.WAL != nil {
					return UsageError{Err: errors.New("--relay runs the table outbox's relay, and this master's outbox is the WAL (master.outbox: wal): run cqrsync relay beside the admin page instead")}
				}
				return nil
			}
			return st.run(cmd, Needs{DB: true}, check, func(s *session) error {
				return serveAdmin(s, listen, runRelay)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to serve the page on, e.g. 127.0.0.1:8080 or :8080 (required)")
	f.BoolVar(&runRelay, "relay", false, "also run the outbox relay in this process, so that syncs are sent without a separate relay")
	return cmd
}

// serveAdmin builds the page from the session's App and serves it until
// the command's context ends.
func serveAdmin(s *session, listen string, runRelay bool) error {
	app := s.app
	cfg := &admin.Config{
		Token: app.Admin.Token, Username: app.Admin.Username, Password: app.Admin.Password,
		Endpoints: app.Admin.Endpoints, Secrets: app.Secrets, Logger: s.log,
		Replica: app.Replica, Queue: app.Queue, DeadLetterQueue: s.dlq(),
	}
	if app.Master != nil {
		cfg.Master, cfg.MasterDB = app.Master, s.db()
	}
	if app.WAL != nil {
		cfg.WALSlot = cmp.Or(app.WAL.Slot, pgwal.DefaultSlot)
	}
	if app.OpenTransport != nil {
		tr, err := s.transport()
		if err != nil {
			return err
		}
		cfg.DeadLetters, cfg.Publisher = tr.DeadLetters, tr.Publisher
		if runRelay {
			rc := app.Relay
			rc.Publisher, rc.Logger = tr.Publisher, s.log
			s.renderer(&rc) // capture triggers' rows
			relay, err := outbox.NewRelay(s.db(), &rc)
			if err != nil {
				return UsageError{Err: err}
			}
			if err := relay.Start(s.ctx); err != nil {
				return err
			}
			defer relay.Stop()
			<-relay.Started()
			cfg.Relay = relay
		}
	}
	h, err := admin.New(cfg)
	if err != nil {
		return UsageError{Err: err}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return UsageError{Err: errtext.Errorf("--listen %s: %w", listen, err)}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(s.env.Err, "cqrsync: admin page on http://%s/; stop with SIGTERM or Ctrl-C\n", ln.Addr())
	select {
	case err := <-served:
		return errtext.Errorf("admin: serving: %w", err)
	case <-s.ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-served
	fmt.Fprintln(s.env.Err, "cqrsync: admin page stopped")
	return err
}
