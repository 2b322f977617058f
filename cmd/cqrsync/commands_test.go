package main_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

const sqliteReplicaDDL = `CREATE TABLE djpeer_basic (
	id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL,
	int_field INTEGER NOT NULL, char_field VARCHAR(200) NOT NULL,
	date_field DATE, datetime_field DATETIME, bool_field BOOLEAN NOT NULL,
	nullable_int INTEGER, nullable_char VARCHAR(200), uuid_field UUID,
	decimal_field NUMERIC(14,4), float_field DOUBLE PRECISION, json_field JSON)`

// TestSQLiteDumpAndLoad loads django-cqrs's captured dump into a SQLite
// replica and dumps it back from a SQLite master, through the binary.
func TestSQLiteDumpAndLoad(t *testing.T) {
	t.Parallel()
	vectors := cqrsynctesting.VectorsDir(t)
	dump, err := os.ReadFile(filepath.Join(vectors, "cmd_cqrs_bulk_dump_basic.dump"))
	if err != nil {
		t.Fatal(err)
	}
	dbDir := t.TempDir()
	createSQLite(t, filepath.Join(dbDir, "replica.db"), sqliteReplicaDDL)
	createSQLite(t, filepath.Join(dbDir, "master.db"), sqliteReplicaDDL)
	config := func(db string, side string) string {
		return fmt.Sprintf("database:\n  url: sqlite://%s\n%s:\n  - cqrs_id: djpeer_basic\n    table: djpeer_basic\n    types: {decimal_field: decimal}\n",
			filepath.Join(dbDir, db), side)
	}
	replica := newService(t, config("replica.db", "replicas"))
	master := newService(t, config("master.db", "masters"))
	loader := newService(t, config("master.db", "replicas")) // fills the master's table
	for _, s := range []*service{replica, master} {
		s.run(t, "", "migrate").ok(t)
	}

	r := replica.run(t, string(dump), "bulk-load", "-i", "-")
	r.ok(t)
	if r.out != "" || r.errOut != "Done!\n22 instance(s) loaded.\n" {
		t.Fatalf("bulk-load: stdout %q, stderr %q", r.out, r.errOut)
	}
	loader.run(t, string(dump), "bulk-load", "-i", "-").ok(t)
	r = master.run(t, "", "bulk-dump", "-c", "djpeer_basic", "-o", "-")
	r.ok(t)
	stderr, _ := os.ReadFile(filepath.Join(vectors, "cmd_cqrs_bulk_dump_basic_stderr.txt"))
	if r.out != string(dump) || r.errOut != string(stderr) {
		t.Fatalf("bulk-dump differs from django-cqrs's: stderr %q", r.errOut)
	}

	// A truncated dump: the complete lines are loaded, the cut one is
	// reported with its line number, and the exit code says so.
	cut := dump[:len(dump)-100]
	r = replica.run(t, string(cut), "bulk-load", "-i", "-", "--clear")
	if r.code != 1 || !strings.HasPrefix(r.errOut, "line 23: skipped: ") || !strings.Contains(r.errOut, "Done!\n21 instance(s) loaded.\n") ||
		!strings.HasSuffix(r.errOut, "cqrsync: bulk-load: 1 bad line(s) skipped (listed above); the other 21 line(s) were applied\n") {
		t.Fatalf("truncated dump: exit %d\n%s", r.code, r.errOut)
	}

	// bulk-dump refuses to overwrite a file.
	if err := os.WriteFile(filepath.Join(master.dir, "djpeer_basic.dump"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	master.run(t, "", "bulk-dump", "-c", "djpeer_basic").fails(t, 2, "output file djpeer_basic.dump exists: pass --force")
	master.run(t, "", "bulk-dump", "-c", "djpeer_basic", "--force").ok(t)
	if got, _ := os.ReadFile(filepath.Join(master.dir, "djpeer_basic.dump")); string(got) != string(dump) {
		t.Fatal("bulk-dump --force did not replace the file")
	}
}

// TestFailures runs commands that must fail, and checks their exit codes
// and one-line reasons, without a password in sight.
func TestFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sqlitePath := filepath.Join(dir, "app.db")
	createSQLite(t, sqlitePath, `CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`,
		`CREATE TABLE account_copy (id INTEGER PRIMARY KEY, name TEXT, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
	good := fmt.Sprintf("database:\n  url: sqlite://%s\nmasters:\n  - {cqrs_id: account, table: account}\nreplicas:\n  - {cqrs_id: account, table: account_copy}\n", sqlitePath)
	app := newService(t, good)
	app.run(t, "", "migrate").ok(t)

	// Real servers that refuse the connection: a wrong password, a missing
	// database. These are configuration errors (exit 2), not outages.
	mycfg, err := mysql.ParseDSN(testenv.MySQLURL(t))
	if err != nil {
		t.Fatal(err)
	}
	mariaDenied := fmt.Sprintf("CQRSYNC_DATABASE_URL=mysql://%s:hunter2@%s/%s", mycfg.User, mycfg.Addr, mycfg.DBName)
	pgu, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pgu.Path = "/cqrsync_no_such_database"
	pgMissing := "CQRSYNC_DATABASE_URL=" + pgu.String()

	cases := []struct {
		name   string
		config string // "" keeps the good one
		env    []string
		stdin  string
		args   []string
		code   int
		want   string
	}{
		{name: "unknown flag", args: []string{"sync", "--nope"}, code: 2, want: "unknown flag: --nope"},
		{name: "unknown command", args: []string{"frob"}, code: 2, want: `unknown command "frob"`},
		{name: "wrong cqrs_id", args: []string{"bulk-dump", "-c", "invoice"}, code: 2, want: `--cqrs-id "invoice" is not a master model here (registered: account)`},
		{name: "malformed filter", args: []string{"sync", "-c", "account", "-f", "{id: 1}", "--dry-run"}, code: 2, want: "--filter is not JSON"},
		{name: "filter on no column", args: []string{"sync", "-c", "account", "-f", `{"nope": 1}`, "--dry-run"}, code: 2, want: "bad filter"},
		{name: "missing dump", args: []string{"bulk-load", "-i", "nope.dump"}, code: 1, want: "input file nope.dump does not exist"},
		{name: "dump of another model", stdin: "invoice\n{}", args: []string{"bulk-load", "-i", "-"}, code: 1, want: `is a dump of "invoice", which is not a replica model here`},
		{name: "bad diff stream", stdin: "garbage", args: []string{"diff-replica", "-q", "q"}, code: 1, want: "bad diff stream"},
		{name: "named config missing", args: []string{"--config", "nope.yaml", "outbox", "status"}, code: 2, want: "config file nope.yaml does not exist"},
		{name: "no database configured", config: "queue: q\n", args: []string{"outbox", "status"}, code: 2,
			want: "database.url: required by outbox status: set it in cqrsync.yaml or CQRSYNC_DATABASE_URL"},
		{name: "sqlite file missing", config: "database: {url: 'sqlite:missing.db'}\n", args: []string{"outbox", "status"}, code: 1,
			want: "database unreachable: database file does not exist: missing.db"},
		{name: "postgres unreachable", env: []string{"CQRSYNC_DATABASE_URL=postgres://app:hunter2@127.0.0.1:1/app?sslmode=disable"},
			args: []string{"outbox", "status"}, code: 1, want: "outbox status: database unreachable: "},
		{name: "mariadb unreachable", env: []string{"CQRSYNC_DATABASE_URL=mysql://app:hunter2@127.0.0.1:1/app"},
			args: []string{"bulk-dump", "-c", "account"}, code: 1, want: "bulk-dump: database unreachable: dial tcp 127.0.0.1:1"},
		{name: "mariadb access denied", env: []string{mariaDenied}, args: []string{"bulk-dump", "-c", "account"}, code: 2,
			want: "bulk-dump: the database refused the connection: Error 1045 (28000): Access denied for user"},
		{name: "postgres database missing", env: []string{pgMissing}, args: []string{"outbox", "status"}, code: 2,
			want: `outbox status: the database refused the connection: `},
		{name: "broker unreachable", env: []string{"CQRSYNC_TRANSPORT_URL=amqp://guest:hunter2@127.0.0.1:1/", "CQRSYNC_QUEUE=q"},
			args: []string{"dead-letters", "dump"}, code: 1, want: "dead-letters dump: broker unreachable: rabbitmq: connect to amqp://guest:xxxxx@127.0.0.1:1/"},
		{name: "sync with the broker down", env: []string{"CQRSYNC_TRANSPORT_URL=amqp://guest:hunter2@127.0.0.1:1/"},
			args: []string{"sync", "-c", "account"}, code: 1, want: "sync: broker unreachable"},
		{name: "bad transport URL", env: []string{"CQRSYNC_TRANSPORT_URL=http://u:hunter2@x/"}, args: []string{"dead-letters", "dump"}, code: 2,
			want: `CQRSYNC_TRANSPORT_URL: scheme "http" is not supported`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := app
			if c.config != "" {
				s = newService(t, c.config)
			}
			s = &service{dir: s.dir, env: c.env}
			s.run(t, c.stdin, c.args...).fails(t, c.code, c.want)
		})
	}

	// An invalid configuration lists every problem, one per line.
	bad := newService(t, `database:
  url: postgres://app:hunter2@db/app
  pool: 3
masters:
  - cqrs_id: account
    fields: [name]
replicas:
  - table: copy
`)
	r := bad.run(t, "", "bulk-dump", "-c", "account")
	want := `cqrsync: bulk-dump: cqrsync.yaml: 4 problems:
  database.pool: unknown key (known: max_open_conns, url) (line 3)
  masters[0].table: required (line 5)
  masters[0].fields: must include the primary key "id" (line 6)
  replicas[0].cqrs_id: required (line 8)
`
	if r.code != 2 || !strings.HasPrefix(r.errOut, want[:len(want)-1]) || strings.Contains(r.errOut, "hunter2") {
		t.Fatalf("invalid config: exit %d\n%s", r.code, r.errOut)
	}
	// Nothing was changed by any of it.
	if n := countSQLite(t, sqlitePath, "SELECT COUNT(*) FROM cqrs_outbox"); n != 0 {
		t.Fatalf("%d events in the outbox", n)
	}
}

// TestSyncAndRelay syncs PostgreSQL rows through RabbitMQ, then leaves
// SYNCs to the relay command, which must wake on PostgreSQL's notification
// (its polling is an hour apart).
func TestSyncAndRelay(t *testing.T) {
	t.Parallel()
	mq := newBroker(t)
	queue := mq.queue()
	dsn, db := postgres(t, `CREATE TABLE account (id INT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INT NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`,
		`INSERT INTO account SELECT i, 'n' || i, 0, now() FROM generate_series(1, 50) i`)
	master := newService(t, fmt.Sprintf("database: {url: '%s'}\ntransport: {url: '%s', exchange: %s}\nmasters:\n  - {cqrs_id: account, table: account}\n", dsn, mq.url, mq.exchange))
	master.run(t, "", "migrate").ok(t)

	mq.bind(t, queue, "account")

	r := master.run(t, "", "sync", "-c", "account", "-f", `{"id__in": [1, 2, 3]}`, "-q", queue)
	r.ok(t)
	if r.out != "Done!\n3 instance(s) synced.\n3 instance(s) processed.\n" || mq.depth(t, queue) != 3 {
		t.Fatalf("sync: stdout %q, stderr %q, queue depth %d", r.out, r.errOut, mq.depth(t, queue))
	}
	key, body := mq.get(t, queue)
	if key != "cqrs."+queue+".account" || !strings.HasPrefix(body, `{"signal_type":"SYNC","cqrs_id":"account","instance_data":{"id":1,`) {
		t.Fatalf("message %s: %s", key, body)
	}

	relay := master.start(t, "relay", "--poll-interval", "1h")
	relay.waitFor(t, "relaying the outbox to the broker (woken by PostgreSQL notifications, polling every 1h0m0s)")
	r = master.run(t, "", "sync", "-c", "account", "-f", `{"id__gt": 40}`, "--no-wait", "-b", "4")
	r.ok(t)
	if !strings.Contains(r.errOut, "10 SYNC event(s) are in the outbox") {
		t.Fatalf("sync --no-wait: %q", r.errOut)
	}
	eventually(t, "the relay to publish the SYNCs", func() bool { return mq.depth(t, queue) == 2+10 })
	r = master.run(t, "", "outbox", "status")
	if r.ok(t); r.out != "outbox: empty\n" {
		t.Fatalf("outbox status: %q", r.out)
	}
	code, errOut := relay.terminate(t)
	if code != 0 || !strings.Contains(errOut, "relay stopped: 10 event(s) published") {
		t.Fatalf("relay after SIGTERM: exit %d\n%s", code, errOut)
	}
	if n := countDB(t, db, "SELECT COUNT(*) FROM cqrs_outbox"); n != 0 {
		t.Fatalf("%d events left in the outbox", n)
	}
}

// TestDeadLetters dumps, retries and purges dead letters on RabbitMQ, with
// django-cqrs's output.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	mq := newBroker(t)
	queue := mq.queue()
	dlq := transport.DeadLetterQueue(queue)
	tr, err := rabbitmq.New(t.Context(), &rabbitmq.Config{URL: mq.url, Exchange: mq.exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithCancel(t.Context())
	sub, err := tr.Subscribe(ctx, &transport.SubscribeParams{Queue: queue, CQRSIDs: []string{"account", "invoice"}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_ = sub.Close()
	vectors := cqrsynctesting.VectorsDir(t)
	raw, err := os.ReadFile(filepath.Join(vectors, "cmd_cqrs_dead_letters_dump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	account := strings.ReplaceAll(strings.TrimSpace(string(raw)), "djpeer_failing", "account")
	invoice := strings.ReplaceAll(account, `"cqrs_id":"account"`, `"cqrs_id":"invoice"`)
	if err := tr.Publish(t.Context(), []transport.Message{
		{CQRSID: "account", Queue: dlq, Body: []byte(account)},
		{CQRSID: "invoice", Queue: dlq, Body: []byte(invoice)},
	}); err != nil {
		t.Fatal(err)
	}
	replica := newService(t, fmt.Sprintf("transport: {url: '%s', exchange: %s}\nqueue: %s\n", mq.url, mq.exchange, queue))

	r := replica.run(t, "", "dead-letters", "dump")
	if r.ok(t); r.out != account+"\n"+invoice+"\n" {
		t.Fatalf("dump: %q", r.out)
	}
	r = replica.run(t, "", "dead-letters", "retry", "--cqrs-id", "invoice", "--dry-run")
	if r.ok(t); r.out != "Total dead letters: 1\nWould retry: 1/1\n"+invoice+"\nDry run: would send 1 dead letter(s) back to queue "+queue+"; nothing was changed.\n" {
		t.Fatalf("retry --dry-run: %q", r.out)
	}
	r = replica.run(t, "", "dead-letters", "retry", "--cqrs-id", "invoice")
	r.ok(t)
	retried := strings.Replace(invoice, `"retries":1`, `"retries":0`, 1)
	retried = retried[:strings.Index(retried, `"expires":"`)]
	if !strings.HasPrefix(r.out, "Total dead letters: 1\nRetrying: 1/1\n"+retried+`"expires":"`) || mq.depth(t, queue) != 1 || mq.depth(t, dlq) != 1 {
		t.Fatalf("retry: %q (queue %d, dead letters %d)", r.out, mq.depth(t, queue), mq.depth(t, dlq))
	}
	if key, _ := mq.get(t, queue); key != "cqrs."+queue+".invoice" {
		t.Fatalf("retried to %s", key)
	}
	r = replica.run(t, "", "dead-letters", "purge", "--dry-run")
	if r.ok(t); r.out != "Total dead letters: 1\nDry run: would purge 1 dead letter(s) from "+dlq+"; nothing was changed.\n" {
		t.Fatalf("purge --dry-run: %q", r.out)
	}
	r = replica.run(t, "", "dead-letters", "purge")
	if r.ok(t); r.out != "Total dead letters: 1\nPurged\n" || mq.depth(t, dlq) != 0 {
		t.Fatalf("purge: %q", r.out)
	}
}

// createSQLite creates a SQLite database file with the given tables.
func createSQLite(t *testing.T, path string, ddl ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	execSQL(t, db, ddl...)
}

func countSQLite(t *testing.T, path, query string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return countDB(t, db, query)
}

func countDB(t *testing.T, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
