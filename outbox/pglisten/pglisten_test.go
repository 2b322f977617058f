package pglisten_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox/pglisten"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// TestNotifiedOnCommitOnly: an outbox insert wakes the listener when its
// transaction commits, and a rolled-back one does not.
func TestNotifiedOnCommitOnly(t *testing.T) {
	t.Parallel()
	dsn := cqrsynctesting.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqldialect.Postgres().Migrate(t.Context(), sqldialect.FromSQL(db)); err != nil {
		t.Fatal(err)
	}
	var notified atomic.Int64
	listening := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		done <- pglisten.Run(ctx, &pglisten.Config{ConnString: dsn, OnNotify: func() { notified.Add(1) },
			OnListening: func() {
				select { // a reconnect must not block the listener
				case listening <- struct{}{}:
				default:
				}
			}})
	}()
	defer func() { cancel(); <-done }()
	<-listening

	insert := func(commit bool) {
		tx, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqldialect.Postgres().InsertOutbox(t.Context(), sqldialect.FromSQL(tx), []sqldialect.OutboxRow{{CQRSID: "x", Body: []byte("{}"), CreatedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	insert(false)
	insert(true)
	deadline := time.Now().Add(5 * time.Second)
	for notified.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no notification after a commit")
		}
		time.Sleep(time.Millisecond)
	}
	// A rolled-back insert sent nothing: exactly one notification arrived
	// (the listener reads them in order, so a second would be here by now).
	insert(true)
	for notified.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no notification after the second commit")
		}
		time.Sleep(time.Millisecond)
	}
	if n := notified.Load(); n != 2 {
		t.Fatalf("%d notifications for two commits and a rollback, want 2", n)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	if err := pglisten.Run(t.Context(), &pglisten.Config{}); err == nil {
		t.Fatal("Run accepted an empty config")
	}
}

// TestInstallUninstall: the migration alone installs no trigger (writers
// pay for NOTIFY only when a listener asks for it); relays installing it
// together leave one trigger; Uninstall removes it.
func TestInstallUninstall(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := cqrsynctesting.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqldialect.Postgres().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
		t.Fatal(err)
	}
	triggers := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname = 'cqrs_outbox_notify' AND tgrelid = 'cqrs_outbox'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := triggers(); n != 0 {
		t.Fatalf("Migrate installed %d NOTIFY triggers, want none", n)
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(context.WithoutCancel(ctx))
			errs <- pglisten.Install(ctx, conn)
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Install: %v", err)
		}
	}
	if n := triggers(); n != 1 {
		t.Fatalf("%d triggers after three Installs, want 1", n)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pglisten.Uninstall(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if n := triggers(); n != 0 {
		t.Fatalf("%d triggers after Uninstall, want 0", n)
	}
}

// TestListensWhenInstallFails: a role that cannot install the trigger (here
// the outbox does not even exist) still listens, for a trigger managed
// elsewhere, instead of reconnecting forever.
func TestListensWhenInstallFails(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	dsn := cqrsynctesting.PostgresDSN(t)
	var notified atomic.Int64
	listening := make(chan struct{}, 1)
	done := make(chan error)
	go func() {
		done <- pglisten.Run(ctx, &pglisten.Config{ConnString: dsn, OnNotify: func() { notified.Add(1) },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnListening: func() {
				select { // a reconnect must not block the listener
				case listening <- struct{}{}:
				default:
				}
			}})
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("not listening 10 s after start, with the trigger impossible to install")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "SELECT pg_notify($1, '')", pglisten.Channel); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for notified.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no notification reached OnNotify")
		}
		time.Sleep(time.Millisecond)
	}
}
