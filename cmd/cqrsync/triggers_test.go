package main_test

import (
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
)

// TestTriggerCaptureExample runs examples/triggers: capture triggers on a
// master table, the plain SQL of writes.sql run by psql or the mysql
// client, and a replica on the other database that converges on the
// master through RabbitMQ, with no cqrsync call on the writer's side.
func TestTriggerCaptureExample(t *testing.T) {
	t.Parallel()
	writes, err := os.ReadFile(filepath.Join("..", "..", "examples", "triggers", "writes.sql"))
	if err != nil {
		t.Fatal(err)
	}
	const pgTable = `CREATE TABLE %s (id BIGINT PRIMARY KEY, name TEXT NOT NULL, balance NUMERIC(12,2),
		born DATE, tags JSONB, active BOOLEAN NOT NULL DEFAULT true,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`
	const myTable = `CREATE TABLE %s (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, balance DECIMAL(12,2),
		born DATE NULL, tags JSON NULL, active TINYINT(1) NOT NULL DEFAULT 1,
		cqrs_revision INT NOT NULL DEFAULT 0, cqrs_updated DATETIME(6))`
	// postgres-wal: a master whose library captures go to the write-ahead
	// log (outbox: wal); the triggers' rows still go through the outbox
	// table, which its relay sends too.
	for _, master := range []string{"postgres", "mariadb", "postgres-wal"} {
		t.Run(master, func(t *testing.T) {
			t.Parallel()
			mq := newBroker(t)
			queue := mq.queue()
			var masterURL, replicaURL string
			var masterDB, replicaDB *sql.DB
			var write func(t *testing.T, script string) result
			masterSettings := ""
			switch master {
			case "postgres":
				masterURL, masterDB = postgres(t, fmt.Sprintf(pgTable, "account"))
				replicaURL, replicaDB = mariadb(t, fmt.Sprintf(myTable, "account_copy"))
				write = func(t *testing.T, script string) result { return psql(t, masterURL, script) }
			case "postgres-wal":
				masterURL = cqrsynctesting.PostgresDatabase(t)
				db, err := sql.Open("pgx", masterURL)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close() })
				masterDB = db
				execSQL(t, masterDB, fmt.Sprintf(pgTable, "account"))
				replicaURL, replicaDB = mariadb(t, fmt.Sprintf(myTable, "account_copy"))
				write = func(t *testing.T, script string) result { return psql(t, masterURL, script) }
				slot := cqrsynctesting.UniqueName("slot_")
				masterSettings = fmt.Sprintf("master: {outbox: wal, wal_slot: %s, wal_publication: %s}\n", slot, slot)
			default:
				masterURL, masterDB = mariadb(t, fmt.Sprintf(myTable, "account"))
				replicaURL, replicaDB = postgres(t, fmt.Sprintf(pgTable, "account_copy"))
				write = func(t *testing.T, script string) result { return mysqlClient(t, masterURL, script) }
			}
			transport := fmt.Sprintf("transport:\n  url: %s\n  exchange: %s\n", mq.url, mq.exchange)
			ms := newService(t, fmt.Sprintf("database:\n  url: %s\n%s%s", masterURL, transport, masterSettings)+`
masters:
  - cqrs_id: account
    table: account
    tracked_fields: [name]
`)
			rs := newService(t, fmt.Sprintf("database:\n  url: %s\n%squeue: %s\n", replicaURL, transport, queue)+`
replicas:
  - cqrs_id: account
    table: account_copy
`)
			for _, s := range []*service{ms, rs} {
				s.run(t, "", "migrate").ok(t)
			}
			r := ms.run(t, "", "capture", "status")
			r.ok(t)
			if r.out != "account (table account): not installed\n" {
				t.Fatalf("capture status before install: %q", r.out)
			}
			ms.run(t, "", "capture", "install", "-c", "account").ok(t)
			r = ms.run(t, "", "capture", "status", "--json")
			r.ok(t)
			if !strings.Contains(r.out, `"installed":true,"current":true`) {
				t.Fatalf("capture status after install: %q", r.out)
			}

			consumer := rs.start(t, "consume")
			consumer.waitFor(t, "consuming queue "+queue)
			relay := ms.start(t, "relay")
			relay.waitFor(t, "cqrsync: relaying the")

			write(t, string(writes)).ok(t)
			const masterRows = `SELECT id, name, balance, born, tags, active, cqrs_revision, cqrs_updated FROM account ORDER BY id`
			const replicaRows = `SELECT id, name, balance, born, tags, active, cqrs_revision, cqrs_updated FROM account_copy ORDER BY id`
			eventually(t, "the replica to equal the master", func() bool {
				return rows(t, masterDB, masterRows) == rows(t, replicaDB, replicaRows)
			})
			if got := rows(t, replicaDB, `SELECT name FROM account_copy WHERE id = 1`); strings.Contains(got, "never") {
				t.Fatalf("the rolled-back update reached the replica: %s", got)
			}
			if code, errOut := relay.terminate(t); code != 0 {
				t.Fatalf("relay: exit %d\n%s", code, errOut)
			}
			if code, errOut := consumer.terminate(t); code != 0 {
				t.Fatalf("consume: exit %d\n%s", code, errOut)
			}
			ms.run(t, "", "capture", "uninstall").ok(t)
			r = ms.run(t, "", "capture", "status")
			r.ok(t)
			if r.out != "account (table account): not installed\n" {
				t.Fatalf("capture status after uninstall: %q", r.out)
			}
		})
	}
}

// psql runs script with the psql client on the schema of a test URL
// (whose search_path travels in PGOPTIONS, as libpq has no such URL key).
func psql(t *testing.T, dsn, script string) result {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	env := ""
	if schema != "" {
		env = fmt.Sprintf("PGOPTIONS='-c search_path=%s' ", schema)
	}
	return shell(t, t.TempDir(), fmt.Sprintf("%spsql %q -X -q -v ON_ERROR_STOP=1 <<'SQL'\n%s\nSQL", env, u.String(), script))
}

// mysqlClient runs script with the mysql client on a test database.
func mysqlClient(t *testing.T, mysqlURL, script string) result {
	t.Helper()
	cfg, err := mysql.ParseDSN(testenv.MySQLURL(t)) // the server's address and user
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(mysqlURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	args := fmt.Sprintf("-h %s -P %s -u %s", host, port, cfg.User)
	if cfg.Passwd != "" {
		args += " -p" + cfg.Passwd
	}
	return shell(t, t.TempDir(), fmt.Sprintf("mysql %s %s <<'SQL'\n%s\nSQL", args, strings.TrimPrefix(u.Path, "/"), script))
}
