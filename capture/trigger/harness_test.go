package trigger_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// backend is one real database kind the tests run on.
type backend struct {
	name    string
	dialect sqldialect.Dialect
	open    func(tb testing.TB, ddl ...string) *sql.DB
	// account is the DDL of the test table, with a column of every type
	// library capture converts.
	account string
}

var backends = []backend{
	{
		name: "postgres", dialect: sqldialect.Postgres(), open: cqrsynctesting.OpenPostgres,
		account: `CREATE TABLE account (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, balance NUMERIC(12,2),
			active BOOLEAN NOT NULL DEFAULT TRUE, born DATE, seen TIMESTAMPTZ, local_seen TIMESTAMP, uid UUID,
			ratio DOUBLE PRECISION, data JSONB, doc JSON, raw BYTEA,
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`,
	},
	{
		name: "mysql", dialect: sqldialect.MySQL(), open: cqrsynctesting.OpenMySQL,
		account: `CREATE TABLE account (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, balance DECIMAL(12,2),
			active TINYINT(1) NOT NULL DEFAULT 1, born DATE, seen DATETIME(6), local_seen DATETIME(6), uid CHAR(36),
			ratio DOUBLE, data JSON, doc JSON, raw VARBINARY(64),
			cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME(6))`,
	},
}

// forEachBackend runs fn as a parallel subtest on every backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// accountModel is the model both capture ways publish: tracked fields, so
// previous_data is checked too.
func accountModel() *cqrsync.MasterModel {
	return &cqrsync.MasterModel{CQRSID: "account", Table: "account", TrackedFields: []string{"name", "balance", "active"}}
}

// master is one master database with its relay publishing to a memory
// broker, read back through a subscription.
type master struct {
	b      backend
	db     *sql.DB
	drv    sqldialect.Driver[*sql.Tx]
	m      *cqrsync.Master[*sql.Tx]
	relay  *outbox.Relay
	sub    transport.Subscription
	clock  *cqrsynctesting.Clock
	pubAt  time.Time
	broker *memory.Broker
	// times are the cqrs_updated of the trigger events being reproduced.
	times []time.Time
}

func newMaster(t *testing.T, b backend, ddl ...string) *master {
	t.Helper()
	if len(ddl) == 0 {
		ddl = []string{b.account}
	}
	mt := &master{b: b, db: b.open(t, ddl...), clock: cqrsynctesting.NewClock(time.Now())}
	mt.pubAt = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	mt.drv = databasesql.New(mt.db, b.dialect)
	var err error
	mt.m, err = cqrsync.NewMaster(mt.drv, &cqrsync.MasterConfig{Now: mt.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := mt.m.Register(accountModel()); err != nil {
		t.Fatal(err)
	}
	mt.broker = memory.NewBroker(nil)
	pub := mt.broker.Publisher()
	t.Cleanup(func() { _ = pub.Close() })
	mt.sub, err = mt.broker.Subscriber().Subscribe(t.Context(), &transport.SubscribeParams{Queue: "q", CQRSIDs: []string{"account", "counter"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mt.sub.Close() })
	mt.relay, err = outbox.NewRelay(mt.drv, &outbox.Config{Publisher: pub, Renderer: mt.m, Now: func() time.Time { return mt.pubAt }})
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

// newMySQLMaster is newMaster on MariaDB/MySQL with the capture triggers
// installed, for what only MySQL has.
func newMySQLMaster(t *testing.T) *master {
	t.Helper()
	mt := newMaster(t, backends[slices.IndexFunc(backends, func(b backend) bool { return b.name == "mysql" })])
	mt.install(t)
	return mt
}

// install puts the capture triggers on the account table.
func (mt *master) install(t *testing.T) {
	t.Helper()
	if err := trigger.Install(t.Context(), mt.drv, accountModel()); err != nil {
		t.Fatal(err)
	}
}

// exec runs statements in one transaction.
func (mt *master) exec(t *testing.T, stmts ...string) {
	t.Helper()
	tx, err := mt.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, s := range stmts {
		if _, err := tx.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// published relays the outbox and returns the bodies published, in order.
func (mt *master) published(t *testing.T) []string {
	t.Helper()
	before := mt.relay.Published()
	for {
		n, err := mt.relay.RunOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	var out []string
	timeout := time.After(10 * time.Second)
	for int64(len(out)) < mt.relay.Published()-before {
		select {
		case d := <-mt.sub.Deliveries():
			out = append(out, string(d.Body))
			if err := mt.sub.Ack(t.Context(), d.ID); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("%d of %d published events arrived", len(out), mt.relay.Published()-before)
		}
	}
	return out
}

// updatedOf returns the cqrs_updated of an event body.
func updatedOf(t *testing.T, body string) time.Time {
	t.Helper()
	p, err := cqrsync.DecodePayload([]byte(body), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := p.Updated()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// libraryTx runs fn in a transaction of the library master, at the time of
// the trigger's event, and commits.
func (mt *master) libraryTx(t *testing.T, at time.Time, fn func(ctx context.Context, tx *sql.Tx) error) {
	t.Helper()
	mt.clock.Set(at)
	tx, err := mt.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(t.Context(), tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func execAll(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// diffBodies describes where two event lists differ.
func diffBodies(got, want []string) string {
	var b strings.Builder
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "event %d:\n trigger: %s\n library: %s\n", i, g, w)
		}
	}
	return b.String()
}
