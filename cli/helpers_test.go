package cli_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// waitTimeout bounds every wait for something that must happen.
const waitTimeout = 20 * time.Second

// The django-cqrs vectors' djpeer_basic model on SQLite: the master table
// and the replica's copy.
const (
	masterBasicDDL = `CREATE TABLE djpeer_basic (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME,
		int_field INTEGER NOT NULL DEFAULT 0, char_field VARCHAR(200) NOT NULL DEFAULT '',
		date_field DATE, datetime_field DATETIME, bool_field BOOLEAN NOT NULL DEFAULT 0,
		nullable_int INTEGER, nullable_char VARCHAR(200), uuid_field UUID,
		decimal_field NUMERIC(14,4), float_field DOUBLE PRECISION, json_field JSON)`
	replicaBasicDDL = `CREATE TABLE djpeer_basic (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL,
		int_field INTEGER NOT NULL, char_field VARCHAR(200) NOT NULL,
		date_field DATE, datetime_field DATETIME, bool_field BOOLEAN NOT NULL,
		nullable_int INTEGER, nullable_char VARCHAR(200), uuid_field UUID,
		decimal_field NUMERIC(14,4), float_field DOUBLE PRECISION, json_field JSON)`
)

var basicTypes = map[string]cqrsync.ValueType{"decimal_field": cqrsync.TypeDecimal}

// testBundle is a master and a replica service of djpeer_basic, each with
// its own SQLite database, joined by an in-memory broker; the cli.Options
// of each side, as a service mounting the command tree would pass them.
type testBundle struct {
	masterDB, replicaDB *sql.DB
	broker              *memory.Broker
	queue               string
	master, replica     *cli.Options
	// loader loads dumps into the master's table (a replica model on the
	// master database), to give the master rows.
	loader  *cli.Options
	vectors string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{
		masterDB:  cqrsynctesting.OpenSQLite(t, masterBasicDDL),
		replicaDB: cqrsynctesting.OpenSQLite(t, replicaBasicDDL),
		broker:    memory.NewBroker(nil),
		queue:     "djpeer_replica",
		vectors:   cqrsynctesting.VectorsDir(t),
	}
	openTransport := func(context.Context) (*cli.Transport, error) {
		pub, sub := b.broker.Publisher(), b.broker.Subscriber()
		return &cli.Transport{Publisher: pub, Subscriber: sub, DeadLetters: b.broker, Close: func() error {
			_ = sub.Close()
			return pub.Close()
		}}, nil
	}
	b.master = &cli.Options{Setup: func(_ context.Context, req *cli.SetupRequest) (*cli.App, error) {
		master, err := cqrsync.NewMaster(databasesql.New(b.masterDB, sqldialect.SQLite()), &cqrsync.MasterConfig{Logger: req.Logger})
		if err != nil {
			return nil, err
		}
		if err := master.Register(&cqrsync.MasterModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: basicTypes}); err != nil {
			return nil, err
		}
		return &cli.App{DB: b.masterDB, Dialect: sqldialect.SQLite(), Master: master, OpenTransport: openTransport}, nil
	}}
	replicaOn := func(db *sql.DB) *cli.Options {
		return &cli.Options{Setup: func(_ context.Context, req *cli.SetupRequest) (*cli.App, error) {
			replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Logger: req.Logger})
			if err != nil {
				return nil, err
			}
			if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: basicTypes}); err != nil {
				return nil, err
			}
			return &cli.App{
				DB: db, Dialect: sqldialect.SQLite(), Replica: replica, Queue: b.queue, OpenTransport: openTransport,
				Consumer: cqrsync.ConsumerConfig{Retry: cqrsync.RetryPolicy{MaxRetries: 1, Delay: func(int) time.Duration { return time.Millisecond }}},
			}, nil
		}}
	}
	b.replica = replicaOn(b.replicaDB)
	b.loader = replicaOn(b.masterDB)
	return b
}

// vector returns the content of a vector file.
func (b *testBundle) vector(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.vectors, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// loadMaster gives the master the rows of django-cqrs's basic dump.
func (b *testBundle) loadMaster(t *testing.T) {
	t.Helper()
	r := run(t, b.loader, b.vector(t, "cmd_cqrs_bulk_dump_basic.dump"), "bulk-load", "-i", "-")
	r.ok(t)
}

// result is what a command did.
type result struct {
	args        []string
	code        int
	out, errOut string
}

func (r result) ok(t *testing.T) {
	t.Helper()
	if r.code != cli.ExitOK {
		t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", r.args, r.code, r.out, r.errOut)
	}
}

// fails checks a failure: the exit code, and one line on stderr naming want.
func (r result) fails(t *testing.T, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.errOut, want) || strings.Count(strings.TrimSpace(r.errOut), "\n") != 0 || !strings.HasPrefix(r.errOut, "cqrsync: ") {
		t.Fatalf("%v: exit %d, stderr %q; want exit %d and one line naming %q", r.args, r.code, r.errOut, code, want)
	}
}

func run(t *testing.T, opts *cli.Options, stdin string, args ...string) result {
	t.Helper()
	return runCtx(t.Context(), opts, stdin, args...)
}

func runCtx(ctx context.Context, opts *cli.Options, stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	code := cli.Run(ctx, &cli.Env{In: strings.NewReader(stdin), Out: &out, Err: &errOut}, opts, args)
	return result{args: args, code: code, out: out.String(), errOut: errOut.String()}
}

// background runs a long-running command (consume, relay) until stop is
// called; stop returns its result. ready waits for a line on its stderr.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
	res    result
	errOut *syncBuffer
}

func start(t *testing.T, opts *cli.Options, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	bg := &background{cancel: cancel, done: make(chan struct{}), errOut: new(syncBuffer)}
	go func() {
		defer close(bg.done)
		var out bytes.Buffer
		code := cli.Run(ctx, &cli.Env{Out: &out, Err: bg.errOut}, opts, args)
		bg.res = result{args: args, code: code, out: out.String(), errOut: bg.errOut.String()}
	}()
	t.Cleanup(func() { bg.stop() })
	return bg
}

func (bg *background) waitFor(t *testing.T, s string) {
	t.Helper()
	if !bg.errOut.WaitFor(s, waitTimeout, bg.done) {
		t.Fatalf("%q never appeared on stderr:\n%s", s, bg.errOut.String())
	}
}

func (bg *background) stop() result {
	bg.cancel()
	<-bg.done
	return bg.res
}

// syncBuffer is the shared concurrent buffer that can wait for text.
type syncBuffer = cqrsynctesting.SyncBuffer

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	cqrsynctesting.Eventually(t, waitTimeout, what, cond)
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// tableText renders a table's rows, ordered by key, to compare two tables.
func tableText(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT * FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			if i > 0 {
				b.WriteString("|")
			}
			b.WriteString(fmtValue(v))
		}
		b.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func fmtValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(x)
	}
}

type cobraCommand = cobra.Command
