package cqrsync_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

func TestTokenText(t *testing.T) {
	t.Parallel()
	for _, tok := range []cqrsync.Token{
		{CQRSID: "account", PK: int64(42), Revision: 3},
		{CQRSID: "order-line_2", PK: "ABCDEF01-2345-6789-abcd-ef0123456789", Revision: 0},
		{CQRSID: "x", PK: "a.b~c/ d", Revision: 9},
		{CQRSID: "x", PK: "", Revision: 1},
		{CQRSID: "x", PK: int64(-7), Revision: 1},
	} {
		s := tok.String()
		got, err := cqrsync.ParseToken(s)
		if err != nil || got != tok {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v", s, got, err, tok)
		}
		if url.QueryEscape(s) != s {
			t.Errorf("token %q is not URL-safe", s)
		}
	}
	for _, bad := range []string{"", "account", "account.3", "account.x.1", "account.-1.1", "account.1.abc", "account.1.~***", "a*b.1.1"} {
		if _, err := cqrsync.ParseToken(bad); !errors.Is(err, cqrsync.ErrBadToken) {
			t.Errorf("ParseToken(%q) error = %v, want ErrBadToken", bad, err)
		}
	}
}

// TestWaitForRefusesNoDBOperations: a model without a table keeps no
// revision to wait for; WaitFor says so instead of waiting forever.
func TestWaitForRefusesNoDBOperations(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t)
	r, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error { return nil }
	if err := r.Register(&cqrsync.ReplicaModel{CQRSID: "event", NoDBOperations: true, OnSave: h, OnDelete: h}); err != nil {
		t.Fatal(err)
	}
	err = r.WaitFor(t.Context(), cqrsync.Token{CQRSID: "event", PK: int64(1), Revision: 0})
	if !errors.Is(err, cqrsync.ErrNotWaitable) {
		t.Fatalf("WaitFor on a NoDBOperations model: %v, want ErrNotWaitable", err)
	}
	if err := r.WaitFor(t.Context(), cqrsync.Token{CQRSID: "nope", PK: int64(1)}); !errors.Is(err, cqrsync.ErrUnknownModel) {
		t.Fatalf("WaitFor on an unknown model: %v, want ErrUnknownModel", err)
	}
}

// rywBundle is a master on PostgreSQL publishing through its outbox, a
// relay and a real RabbitMQ exchange to a replica on MariaDB that maps the
// master's fields to other column names.
type rywBundle struct {
	master    *cqrsync.Master[*sql.Tx]
	masterDB  *sql.DB
	relay     *outbox.Relay
	replica   *cqrsync.Replica
	replicaDB *sql.DB
	tr        *rabbitmq.Transport
	queue     string
}

func setupReadYourWrites(t testing.TB, waitPoll time.Duration) *rywBundle {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	amqpURL := testenv.AMQPURL(t)
	b := &rywBundle{queue: cqrsynctesting.UniqueName("cqrsynctest_ryw_q_")}
	exchange := cqrsynctesting.UniqueName("cqrsynctest_ryw_x_")
	b.tr = newRabbitTransport(t, amqpURL, exchange, b.queue)
	var err error
	b.masterDB = cqrsynctesting.OpenPostgres(t, `CREATE TABLE ryw_account (
		id BIGINT PRIMARY KEY, name TEXT NOT NULL, balance NUMERIC(12,2) NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`)
	b.replicaDB = cqrsynctesting.OpenMySQL(t, `CREATE TABLE ryw_account_copy (
		account_id BIGINT PRIMARY KEY, title VARCHAR(200) NOT NULL, amount DECIMAL(12,2) NOT NULL,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME(6) NOT NULL)`)
	b.relay, err = outbox.NewRelay(databasesql.New(b.masterDB, sqldialect.Postgres()), &outbox.Config{Publisher: b.tr, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b.master, err = cqrsync.NewMaster(databasesql.New(b.masterDB, sqldialect.Postgres()), &cqrsync.MasterConfig{Relay: b.relay, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.master.Register(&cqrsync.MasterModel{CQRSID: "ryw_account", Table: "ryw_account"}); err != nil {
		t.Fatal(err)
	}
	b.replica, err = cqrsync.NewReplica(databasesql.New(b.replicaDB, sqldialect.MySQL()), &cqrsync.ReplicaConfig{Logger: quiet, WaitPoll: waitPoll})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.replica.Register(&cqrsync.ReplicaModel{CQRSID: "ryw_account", Table: "ryw_account_copy", PK: "account_id",
		Mapping: map[string]string{"id": "account_id", "name": "title", "balance": "amount"}}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *rywBundle) consume(t testing.TB) {
	t.Helper()
	runConsumer(t, &cqrsync.ConsumerConfig{Replica: b.replica, Subscriber: b.tr, Publisher: b.tr, Queue: b.queue,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// write runs fn in a master transaction and returns the tokens it captured.
func (b *rywBundle) write(t testing.TB, fn func(ctx context.Context, tx *sql.Tx) error) []cqrsync.Token {
	t.Helper()
	ctx, toks := cqrsync.CollectTokens(t.Context())
	if err := cqrsync.RunTx(ctx, b.masterDB, b.master, func(tx *sql.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
	return toks.All()
}

func (b *rywBundle) title(t *testing.T, id int64) (string, bool) {
	t.Helper()
	var title string
	err := b.replicaDB.QueryRowContext(t.Context(), "SELECT title FROM ryw_account_copy WHERE account_id = ?", id).Scan(&title)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return title, true
}

// TestReadYourWrites: a write on the PostgreSQL master yields a token; the
// MariaDB replica's WaitFor returns only once the write is applied there,
// so the read right after it sees the write — for a create, an update and
// a delete, through a field mapping. WaitPoll is an hour: only the
// in-process consumer's batches can wake the waits.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	b := setupReadYourWrites(t, time.Hour)
	b.consume(t)
	ctx := t.Context()

	// The relay is not running yet: the write cannot reach the replica.
	toks := b.write(t, func(ctx context.Context, tx *sql.Tx) error {
		return b.master.Insert(ctx, tx, "ryw_account", map[string]any{"id": 1, "name": "first", "balance": "10.00"})
	})
	if len(toks) != 1 || toks[0] != (cqrsync.Token{CQRSID: "ryw_account", PK: int64(1), Revision: 0}) {
		t.Fatalf("Insert's tokens = %+v", toks)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := b.replica.WaitFor(short, toks[0])
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor before the event could arrive: %v, want context.DeadlineExceeded", err)
	}
	waited := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		waited <- b.replica.WaitFor(wctx, toks[0])
	}()
	if err := b.relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.relay.Stop() })
	if err := <-waited; err != nil {
		t.Fatalf("WaitFor after the relay started: %v", err)
	}
	if title, ok := b.title(t, 1); !ok || title != "first" {
		t.Fatalf("right after WaitFor the replica has %q (row: %v), want %q", title, ok, "first")
	}

	// Updates, one after another: each read right after its wait sees it.
	for i, name := range []string{"second", "third", "fourth"} {
		toks := b.write(t, func(ctx context.Context, tx *sql.Tx) error {
			return b.master.UpdateRow(ctx, tx, "ryw_account", int64(1), map[string]any{"name": name})
		})
		if len(toks) != 1 || toks[0].Revision != int64(i+1) {
			t.Fatalf("UpdateRow's tokens = %+v, want revision %d", toks, i+1)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := b.replica.WaitFor(wctx, toks[0])
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if title, _ := b.title(t, 1); title != name {
			t.Fatalf("right after WaitFor the replica has %q, want %q", title, name)
		}
	}

	// A delete's token is met by the replica's tombstone.
	toks = b.write(t, func(ctx context.Context, tx *sql.Tx) error {
		return b.master.Delete(ctx, tx, "ryw_account", int64(1))
	})
	if len(toks) != 1 || toks[0].Revision != 4 {
		t.Fatalf("Delete's tokens = %+v, want revision 4", toks)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.replica.WaitFor(wctx, toks[0]); err != nil {
		t.Fatal(err)
	}
	if title, ok := b.title(t, 1); ok {
		t.Fatalf("right after WaitFor for the delete the replica still has %q", title)
	}
}

// TestReadYourWritesHTTP: the wait over HTTP, served by a replica process
// without a consumer of its own (it polls), while another replica object
// on the same database consumes.
func TestReadYourWritesHTTP(t *testing.T) {
	t.Parallel()
	b := setupReadYourWrites(t, time.Hour)
	b.consume(t)
	if err := b.relay.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.relay.Stop() })

	reader, err := cqrsync.NewReplica(databasesql.New(b.replicaDB, sqldialect.MySQL()), &cqrsync.ReplicaConfig{WaitPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.Register(&cqrsync.ReplicaModel{CQRSID: "ryw_account", Table: "ryw_account_copy", PK: "account_id"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reader.WaitHandler(nil))
	defer srv.Close()
	get := func(query string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + "?" + query)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	toks := b.write(t, func(ctx context.Context, tx *sql.Tx) error {
		return b.master.Insert(ctx, tx, "ryw_account", map[string]any{"id": 7, "name": "web", "balance": "1.50"})
	})
	if code := get("token=" + toks[0].String() + "&timeout=30s"); code != http.StatusOK {
		t.Fatalf("wait for %s: status %d, want 200", toks[0], code)
	}
	if title, _ := b.title(t, 7); title != "web" {
		t.Fatalf("after 200 the replica has %q, want %q", title, "web")
	}
	future := cqrsync.Token{CQRSID: "ryw_account", PK: int64(7), Revision: 99}
	for query, want := range map[string]int{
		"token=" + future.String() + "&timeout=100ms": http.StatusRequestTimeout,
		"token=ryw_account.x.7":                       http.StatusBadRequest,
		"":                                            http.StatusBadRequest,
		"token=" + toks[0].String() + "&timeout=-1s": http.StatusBadRequest,
		"token=unknown.0.7":                          http.StatusBadRequest,
		"token=ryw_account.0.~YWJj":                  http.StatusBadRequest, // a text key for an integer column
	} {
		if code := get(query); code != want {
			t.Errorf("GET ?%s: status %d, want %d", query, code, want)
		}
	}
}

// BenchmarkReadYourWrites measures a write on the PostgreSQL master and
// the wait until the MariaDB replica has it, through the outbox, the relay,
// RabbitMQ and the consumer: the latency a read-after-write request pays.
// WaitFor is woken by the consumer's batches; the baseline, measured in the
// same run, polls the replica's row every millisecond instead (hot
// polling: one query per millisecond per waiting request).
func BenchmarkReadYourWrites(b *testing.B) {
	rb := setupReadYourWrites(b, time.Hour)
	rb.consume(b)
	if err := rb.relay.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rb.relay.Stop() })
	rb.write(b, func(ctx context.Context, tx *sql.Tx) error {
		return rb.master.Insert(ctx, tx, "ryw_account", map[string]any{"id": 1, "name": "bench", "balance": "0"})
	})
	n := 0
	update := func(b *testing.B) cqrsync.Token {
		n++
		return rb.write(b, func(ctx context.Context, tx *sql.Tx) error {
			return rb.master.UpdateRow(ctx, tx, "ryw_account", int64(1), map[string]any{"name": fmt.Sprint("v", n)})
		})[0]
	}
	b.Run("WaitFor", func(b *testing.B) {
		for b.Loop() {
			tok := update(b)
			ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
			err := rb.replica.WaitFor(ctx, tok)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("poll1ms", func(b *testing.B) {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		queries := 0
		for b.Loop() {
			tok := update(b)
			for {
				var rev int64
				queries++
				if err := rb.replicaDB.QueryRowContext(b.Context(), "SELECT cqrs_revision FROM ryw_account_copy WHERE account_id = 1").Scan(&rev); err != nil {
					b.Fatal(err)
				}
				if rev >= tok.Revision {
					break
				}
				<-tick.C
			}
		}
		b.ReportMetric(float64(queries)/float64(b.N), "queries/op")
	})
}
