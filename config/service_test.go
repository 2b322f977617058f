package config_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/sqlite"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// TestGoModelsNextToYAML is a service that loads the example configuration
// and registers two models of its own in Go: a master (customer) that the
// file's replica consumes, and a replica of the file's account master with
// a custom handler. Through the command tree it mounts, one SQLite database
// (master and replica at once) and the in-memory broker: migrate, sync both
// masters, consume, and both the file's and the Go model's events arrive.
func TestGoModelsNextToYAML(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "service.db")
	env := map[string]string{
		config.EnvConfig:      exampleFile(t),
		config.EnvDatabaseURL: "sqlite://" + dbPath + "?mode=rwc",
	}
	broker := memory.NewBroker(nil)
	const queue = "billing_replica" // the example's queue
	if err := broker.DeclareQueue(queue, "account", "customer"); err != nil {
		t.Fatal(err)
	}

	type seen struct {
		pk   any
		plan any
	}
	var mu sync.Mutex
	var handled []seen
	opts := config.CLI(&config.CLIOpts{
		Getenv: func(k string) string { return env[k] },
		Masters: []*cqrsync.MasterModel{
			{CQRSID: "customer", Table: "customer", Fields: []string{"id", "name", "email"}},
		},
		Replicas: []*cqrsync.ReplicaModel{{
			CQRSID: "account", NoDBOperations: true,
			OnSave: func(ctx context.Context, ex sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
				plan, _ := e.Data.Get("plan")
				if _, err := ex.Exec(ctx, `INSERT INTO account_seen (id, plan) VALUES (?, ?)`, e.PK, plan); err != nil {
					return err
				}
				mu.Lock()
				handled = append(handled, seen{e.PK, plan})
				mu.Unlock()
				return nil
			},
			OnDelete: func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error { return nil },
		}},
		OpenTransport: func(_ context.Context, c *config.Config, _ *slog.Logger) (*cli.Transport, error) {
			if c.Transport.URL != "amqp://guest:guest@localhost:5672/" {
				t.Errorf("OpenTransport got transport.url %q, want the example's", c.Transport.URL)
			}
			pub, sub := broker.Publisher(), broker.Subscriber()
			return &cli.Transport{Publisher: pub, Subscriber: sub, DeadLetters: broker, Close: func() error {
				_ = sub.Close()
				return pub.Close()
			}}, nil
		},
	})

	run := func(ctx context.Context, args ...string) (code int, out, errOut string) {
		var o, e bytes.Buffer
		code = cli.Run(ctx, &cli.Env{Out: &o, Err: &e}, opts, args)
		return code, o.String(), e.String()
	}
	if code, _, errOut := run(t.Context(), "migrate"); code != cli.ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		// The example's tables and the Go models' ones.
		`CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT, email TEXT, plan TEXT, created DATETIME,
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`,
		`CREATE TABLE invoice (id INTEGER PRIMARY KEY, number TEXT, total NUMERIC, customer_id INTEGER,
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`,
		`CREATE TABLE customer_copy (id INTEGER PRIMARY KEY, full_name TEXT, email TEXT,
			cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`,
		`CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, email TEXT,
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`,
		`CREATE TABLE account_seen (id INTEGER PRIMARY KEY, plan TEXT)`,
		`INSERT INTO account (id, name, email, plan, created, cqrs_updated) VALUES (1, 'Ada', 'ada@example.com', 'pro', '2026-01-02 03:04:05', '2026-01-02 03:04:05')`,
		`INSERT INTO customer (id, name, email, cqrs_updated) VALUES (7, 'Grace', 'grace@example.com', '2026-01-02 03:04:05')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	for _, id := range []string{"account", "customer"} {
		code, out, errOut := run(t.Context(), "sync", "-c", id)
		if code != cli.ExitOK || !strings.Contains(out, "1 instance(s) synced") {
			t.Fatalf("sync -c %s: exit %d\nstdout %s\nstderr %s", id, code, out, errOut)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	consumeErr := new(cqrsynctesting.SyncBuffer)
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, &cli.Env{Out: new(bytes.Buffer), Err: consumeErr}, opts, []string{"consume"})
	}()
	stopped := false
	stop := func() int {
		if stopped {
			return -1
		}
		stopped = true
		cancel()
		return <-done
	}
	defer func() {
		if code := stop(); t.Failed() {
			t.Logf("consume: exit %d\n%s", code, consumeErr)
		}
	}()
	var name, email string
	cqrsynctesting.Eventually(t, 20*time.Second, "both models to be consumed", func() bool {
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		return n == 1 && db.QueryRow(`SELECT full_name, email FROM customer_copy WHERE id = 7`).Scan(&name, &email) == nil
	})
	if code := stop(); code != cli.ExitOK || !strings.Contains(consumeErr.String(), "consumer stopped: 2 received, 2 applied, 0 dropped") {
		t.Fatalf("consume: exit %d\n%s", code, consumeErr)
	}
	if name != "Grace" || email != "grace@example.com" {
		t.Fatalf("customer_copy 7 (the file's replica of the Go master): %q %q", name, email)
	}
	var plan string
	if err := db.QueryRow(`SELECT plan FROM account_seen WHERE id = 1`).Scan(&plan); err != nil || plan != "pro" {
		t.Fatalf("account_seen 1 (the Go handler of the file's master): %q %v", plan, err)
	}
	if len(handled) != 1 || handled[0].plan != "pro" {
		t.Fatalf("handler calls: %+v", handled)
	}
}
